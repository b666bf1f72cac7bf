import * as path from 'node:path';
import t from 'tap';
import { readArrowLog } from '../../src/sinks/arrow-log';
import { fakeConfig, readEvents, request, startTestDaemon, type SseEvent } from './client';

const CLIENTS = 100;

t.test(`${CLIENTS} concurrent SSE clients while a run trains: all served in full, a bounded number, all closed at the end`, async (t) => {
  const d = await startTestDaemon({ maxStreams: CLIENTS, pollMs: 100 });
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('crowd', 100))).status, 201);
  await d.waitForRun('crowd', (r) => r.state === 'running' && r.step >= 1);

  const connected: Promise<void>[] = [];
  const clients: Promise<{ status: number; events: SseEvent[] }>[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    let resolve!: () => void;
    connected.push(new Promise<void>((r) => (resolve = r)));
    clients.push(readEvents(d.url, '/runs/crowd/events', {}, () => resolve()));
  }
  await Promise.all(connected);
  const refused = await request(d.url, '/runs/crowd/events');
  t.equal(refused.status, 503, `client ${CLIENTS + 1} is refused: the number of streams is bounded`);
  t.match(refused.json().error, /too many open streams/);
  const health = (await request(d.url, '/metrics')).text;
  t.match(health, new RegExp(`^cigl_stream_clients\\{kind="events"\\} ${CLIENTS}$`, 'm'));

  await d.waitForRun('crowd', (r) => r.step >= 30);
  t.equal((await request(d.url, '/runs/crowd/cancel', { method: 'POST', headers: { authorization: `Bearer ${d.token}` } })).status, 202);
  const results = await Promise.all(clients); // each stream ends by itself once the run has ended

  const log = readArrowLog(path.join(d.daemon.home.runsDir, 'crowd'), 'metrics');
  const expected = JSON.stringify(Array.from(log.getChild('value')!.toArray() as Float64Array));
  let complete = 0;
  for (const { status, events } of results) {
    const last = events[events.length - 1];
    const values = events.filter((e) => e.event === 'metrics').flatMap((e) => JSON.parse(e.data).map((r: { value: number }) => r.value));
    if (status === 200 && last.event === 'end' && JSON.parse(last.data).state === 'cancelled' && JSON.stringify(values) === expected) complete++;
  }
  t.equal(complete, CLIENTS, `every client got all ${log.numRows} metric rows in order and the end of the run`);

  // Closed streams are released: the count drops back and a new client is served.
  for (;;) {
    const text = (await request(d.url, '/metrics')).text;
    if (/^cigl_stream_clients\{kind="events"\} 0$/m.test(text)) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const late = await readEvents(d.url, '/runs/crowd/events');
  t.equal(late.status, 200);
  t.equal(late.events[late.events.length - 1].event, 'end');
});
