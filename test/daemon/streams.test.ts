import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import t from 'tap';
import { RecordBatchReader, Table } from 'apache-arrow';
import pl from 'nodejs-polars';
import { readArrowLog } from '../../src/sinks/arrow-log';
import { fakeConfig, readEvents, request, startTestDaemon, type SseEvent } from './client';

const column = (table: Table, name: string) => Array.from(table.getChild(name)!.toArray() as ArrayLike<unknown>);

t.test('GET /runs/:id/metrics streams the live log as one Arrow IPC stream, ending when the run ends', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('streamed', 3))).status, 201);

  const { hostname, port } = new URL(d.url);
  const statesWhenDataArrived: string[] = [];
  const { bytes, contentType } = await new Promise<{ bytes: Buffer; contentType?: string }>((resolve, reject) => {
    http.get({ host: hostname, port, path: '/runs/streamed/metrics', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        // Note the run's state when record batches (beyond the schema) first arrive.
        if (statesWhenDataArrived.length === 0 && chunks.length > 1) {
          void d.daemon.queue.get('streamed').then((r) => statesWhenDataArrived.push(r!.state));
        }
      });
      res.on('end', () => resolve({ bytes: Buffer.concat(chunks), contentType: res.headers['content-type'] }));
      res.on('error', reject);
    });
  });
  t.equal(contentType, 'application/vnd.apache.arrow.stream');
  t.equal(statesWhenDataArrived[0], 'running', 'rows arrived while the run was still training');
  t.same([...bytes.subarray(bytes.length - 8)], [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 'ends with the end-of-stream marker');

  const reader = RecordBatchReader.from(bytes);
  const streamed = new Table(reader.schema, [...reader]);
  const logged = readArrowLog(path.join(d.daemon.home.runsDir, 'streamed'), 'metrics');
  t.equal(streamed.numRows, logged.numRows, `all ${logged.numRows} rows of the log`);
  for (const name of ['step', 'epoch', 'phase', 'metric', 'value', 'run_id']) t.same(column(streamed, name), column(logged, name), `column ${name}`);
  const df = pl.readIPCStream(bytes);
  t.equal(df.height, logged.numRows, 'polars reads the same stream');
  t.same(Array.from(df.getColumn('value').toArray()), column(logged, 'value'));
});

t.test('GET /runs/:id/events sends JSON rows with ids; Last-Event-ID replays exactly what was missed', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('evented', 4))).status, 201);

  const whole = await readEvents(d.url, '/runs/evented/events');
  t.equal(whole.status, 200);
  t.match(whole.contentType, /^text\/event-stream/);
  t.equal(whole.events[0].event, 'status', 'starts with the run status');
  const end = whole.events[whole.events.length - 1];
  t.equal(end.event, 'end', 'ends with an end event');
  t.equal(JSON.parse(end.data).state, 'completed');
  const rows = (events: SseEvent[], kind: string) => events.filter((e) => e.event === kind).flatMap((e) => JSON.parse(e.data));
  const dir = path.join(d.daemon.home.runsDir, 'evented');
  const metricRows = rows(whole.events, 'metrics');
  t.equal(metricRows.length, readArrowLog(dir, 'metrics').numRows, 'every metric row once');
  t.same(metricRows.map((r: { step: number }) => r.step), column(readArrowLog(dir, 'metrics'), 'step'), 'in log order');
  t.equal(rows(whole.events, 'mask-stats').length, readArrowLog(dir, 'mask-stats').numRows, 'every mask row once');
  t.same(Object.keys(metricRows[0]).sort(), ['epoch', 'metric', 'phase', 'runId', 'step', 'value', 'wallTimeMs']);
  // How rows group into events depends on timing, so the ids are checked as one sequence (one check).
  const ids = whole.events.filter((e) => e.id !== undefined).map((e) => e.id!);
  let before = [0, 0];
  const stalled: string[] = [];
  for (const id of ids) {
    const at = id.split(':').map(Number);
    if (!(at[0] >= before[0] && at[1] >= before[1] && at[0] + at[1] > before[0] + before[1])) stalled.push(id);
    before = at;
  }
  t.ok(ids.length > 0, 'data events carry ids');
  t.same(stalled, [], `every id advances (${ids.join(', ')})`);
  t.equal(before[0], metricRows.length, 'the last id counts every metric row');

  // A client that drops after two data events and reconnects with the last id it saw.
  let seen = 0;
  const first = await readEvents(d.url, '/runs/evented/events', {}, (e) => (e.id !== undefined && ++seen === 2 ? 'stop' : undefined));
  const lastId = [...first.events].reverse().find((e) => e.id !== undefined)!.id!;
  const rest = await readEvents(d.url, '/runs/evented/events', { 'last-event-id': lastId });
  t.same([...rows(first.events, 'metrics'), ...rows(rest.events, 'metrics')], metricRows, 'before + after the reconnect = everything, once');
  t.same([...rows(first.events, 'mask-stats'), ...rows(rest.events, 'mask-stats')], rows(whole.events, 'mask-stats'));

  const caughtUp = await readEvents(d.url, '/runs/evented/events', { 'last-event-id': end.id ?? before.join(':') });
  t.same(caughtUp.events.map((e) => e.event), ['status', 'end'], 'nothing to replay for a client that saw everything');
  const bad = await request(d.url, '/runs/evented/events', { headers: { 'last-event-id': '../../x' } });
  t.equal(bad.status, 400);
});

t.test('GET /metrics reports queue depth, throughput, tensors, memory and open streams in Prometheus format', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('watched', 100))).status, 201);
  t.equal((await d.submit(fakeConfig('next', 1))).status, 201);
  await d.waitForRun('watched', (r) => r.state === 'running' && r.step >= 2);
  const stream = readEvents(d.url, '/runs/watched/events', {}, (e) => (e.event === 'metrics' ? 'stop' : undefined));
  let text = '';
  const value = (line: RegExp) => Number(new RegExp(`^${line.source} (\\S+)$`, 'm').exec(text)?.[1]);
  // The SSE client counts once it has been registered; poll until it shows (the stream is still open).
  for (;;) {
    const res = await request(d.url, '/metrics');
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    text = res.text;
    if (value(/cigl_stream_clients\{kind="events"\}/) === 1) break;
  }
  for (const line of text.trim().split('\n')) {
    if (line === '') continue; // between families
    if (line.startsWith('#')) t.match(line, /^# (HELP|TYPE) [a-z_][a-z0-9_]* /);
    else t.match(line, /^[a-z_][a-z0-9_]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$/, line);
  }
  t.equal(value(/cigl_queue_depth/), 1);
  t.equal(value(/cigl_runs_running/), 1);
  t.equal(value(/cigl_runs\{state="queued"\}/), 1);
  t.ok(value(/cigl_run_images_per_second\{run="watched"\}/) >= 500, 'the fake job reports 500+ images/s');
  t.ok(value(/cigl_run_step\{run="watched"\}/) >= 2);
  t.equal(value(/cigl_tfjs_tensors/), 0, 'the fake job uses no tfjs: its thread reports no tensors');
  t.ok(value(/process_resident_memory_bytes/) > 1e6);
  t.ok(value(/nodejs_heap_size_used_bytes/) > 0);
  t.ok(value(/nodejs_eventloop_lag_p99_seconds/) >= 0, "the daemon's own event-loop lag");
  await stream;
  await request(d.url, '/runs/watched/cancel', { method: 'POST', headers: { authorization: `Bearer ${d.token}` } });
  await d.waitForRun('watched', (r) => r.state === 'cancelled');
});

t.test('shutdown mid-run: the job checkpoints and is queued again; live streams close (SSE without "end", Arrow with its end marker)', async (t) => {
  const d = await startTestDaemon();
  t.equal((await d.submit(fakeConfig('interrupted', 100))).status, 201);
  await d.waitForRun('interrupted', (r) => r.state === 'running' && r.step >= 3);
  let connected!: () => void;
  const watching = new Promise<void>((resolve) => (connected = resolve));
  const events = readEvents(d.url, '/runs/interrupted/events', {}, () => connected());
  await watching;
  const arrow = request(d.url, '/runs/interrupted/metrics');
  await d.waitForRun('interrupted', (r) => r.step >= 6);

  await d.stop();
  const watched = await events;
  t.notOk(watched.events.some((e) => e.event === 'end'), 'the event stream closed without "end", so clients reconnect');
  const bytes = (await arrow).body;
  t.same([...bytes.subarray(bytes.length - 8)], [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 'the Arrow stream ends cleanly');
  const reader = RecordBatchReader.from(bytes);
  t.ok(new Table(reader.schema, [...reader]).numRows > 0, 'after the rows logged so far');
  const saved = JSON.parse(fs.readFileSync(d.daemon.home.queueFile, 'utf8')).runs[0];
  t.match(saved, { id: 'interrupted', state: 'queued', interrupted: true, attempts: 0 }, 'the graceful stop used up no attempt');
  t.ok(saved.step > 0 && saved.step < 1000);
  t.notOk(fs.existsSync(d.daemon.home.pidFile), 'the home is released');
  await t.rejects(request(d.url, '/runs'), /ECONNREFUSED/, 'the server no longer listens');
});
