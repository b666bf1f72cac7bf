import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { RecordBatchReader, Table } from 'apache-arrow';
import { readArrowLog, segmentFiles } from '../../src/sinks/arrow-log';
import { listCheckpoints } from '../../src/sinks/checkpoint';
import { RUN_OUTPUT_LOG } from '../../src/daemon/run-scheduler';
import { spawnNode, type Child } from '../helpers/child-process';
import { fakeConfig, postJson, readEvents, request, startTestDaemon, tempDir, waitForRun } from './client';
import { fakeWeightAfter } from './fake-train-job';

const CHILD = path.join(__dirname, 'children', 'fake-daemon.js');

async function spawnDaemon(home: string): Promise<{ child: Child; url: string; token: string }> {
  const child = spawnNode(CHILD, ['--home', home, '--port', '0']);
  const line = await child.waitForLine((l) => l.includes('listening on'));
  const url = /(http:\/\/\S+?)\/?$/.exec(line)![1];
  return { child, url, token: fs.readFileSync(path.join(home, 'token'), 'utf8').trim() };
}

function queueFile(home: string): { runs: { id: string; state: string; interrupted?: boolean; attempts: number; step?: number }[] } {
  return JSON.parse(fs.readFileSync(path.join(home, 'queue.json'), 'utf8'));
}

const finalWeight = (home: string, id: string) =>
  JSON.parse(fs.readFileSync(path.join(home, 'runs', id, 'model', 'fake-weights.json'), 'utf8')).weight as number;

t.test('SIGTERM mid-run: the job checkpoints, streams close, the daemon exits 0; restarted, it resumes and finishes', async (t) => {
  const home = path.join(tempDir('cigl-restart-'), 'home');
  const first = await spawnDaemon(home);
  t.equal((await postJson(first.url, '/runs', { pipeline: 'train', config: fakeConfig('resumable', 8) }, first.token)).status, 201);
  t.equal((await postJson(first.url, '/runs', { pipeline: 'train', config: fakeConfig('later', 1) }, first.token)).status, 201);
  await waitForRun(first.url, 'resumable', (r) => r.state === 'running' && r.step >= 12);
  let connected!: () => void;
  const watching = new Promise<void>((resolve) => (connected = resolve));
  const watcher = readEvents(first.url, '/runs/resumable/events', {}, () => connected());
  await watching; // the client is connected before the signal

  first.child.process.kill('SIGTERM');
  const exit = await first.child.exited;
  t.equal(exit.code, 0, `exit status 0 (stderr: ${exit.stderr})`);
  t.match(exit.stderr, /stopped/);
  const watched = await watcher;
  t.notOk(watched.events.some((e) => e.event === 'end'), 'the event stream closed without "end", so clients reconnect');

  const saved = queueFile(home).runs;
  const resumable = saved.find((r) => r.id === 'resumable')!;
  t.match(resumable, { state: 'queued', interrupted: true, attempts: 1 }, 'the interrupted run is queued again');
  t.equal(saved.find((r) => r.id === 'later')!.state, 'queued', 'the waiting run stays queued');
  const checkpoint = listCheckpoints(path.join(home, 'runs', 'resumable', 'checkpoints'))[0];
  t.equal(checkpoint.step, resumable.step, `checkpoint at the stop step ${resumable.step}`);
  t.ok(resumable.step! > 0 && resumable.step! < 80);
  t.notOk(fs.existsSync(path.join(home, 'daemon.pid')), 'the home is released');

  const second = await spawnDaemon(home);
  t.teardown(() => second.child.process.kill('SIGKILL'));
  const done = await waitForRun(second.url, 'resumable', (r) => r.state === 'completed');
  t.equal(done.attempts, 2);
  t.equal(done.step, 80);
  t.equal(finalWeight(home, 'resumable'), fakeWeightAfter(80), 'bit-identical to an uninterrupted run: resumed with the right state');
  const output = fs.readFileSync(path.join(home, 'runs', 'resumable', RUN_OUTPUT_LOG), 'utf8');
  t.match(output, `resuming from checkpoint at step ${checkpoint.step}`);
  const segments = segmentFiles(path.join(home, 'runs', 'resumable'), 'metrics');
  t.equal(segments.length, 2, 'the resumed run continued the log in a second segment');

  // The Arrow stream of a resumed run: both segments, one schema, raw rows.
  const stream = await request(second.url, '/runs/resumable/metrics');
  const reader = RecordBatchReader.from(stream.body);
  const streamed = new Table(reader.schema, [...reader]);
  const merged = readArrowLog(path.join(home, 'runs', 'resumable'), 'metrics');
  const steps = Array.from(streamed.getChild('step')!.toArray() as Int32Array);
  t.ok(streamed.numRows >= merged.numRows, 'every row of both segments');
  t.equal(Math.max(...steps), 79);
  t.same(new Set(steps), new Set(Array.from(merged.getChild('step')!.toArray() as Int32Array)), 'the same steps as the merged log');

  await waitForRun(second.url, 'later', (r) => r.state === 'completed');
  second.child.process.kill('SIGTERM');
  t.equal((await second.child.exited).code, 0);
});

t.test('kill -9 mid-run: the restarted daemon finds the run running, requeues it and resumes it from its checkpoint', async (t) => {
  const home = path.join(tempDir('cigl-restart-'), 'home');
  const first = await spawnDaemon(home);
  t.equal((await postJson(first.url, '/runs', { pipeline: 'train', config: fakeConfig('killed', 8) }, first.token)).status, 201);
  await waitForRun(first.url, 'killed', (r) => r.state === 'running' && r.step >= 12);
  first.child.process.kill('SIGKILL');
  t.equal((await first.child.exited).signal, 'SIGKILL');
  t.equal(queueFile(home).runs[0].state, 'running', 'the queue file still says running');
  t.ok(fs.existsSync(path.join(home, 'daemon.pid')), 'and the dead daemon left its pid file');
  const checkpoint = listCheckpoints(path.join(home, 'runs', 'killed', 'checkpoints'))[0];
  t.ok(checkpoint.step >= 10, `a checkpoint at step ${checkpoint.step} survived`);

  const second = await spawnDaemon(home);
  t.teardown(() => second.child.process.kill('SIGKILL'));
  const done = await waitForRun(second.url, 'killed', (r) => r.state === 'completed');
  t.equal(done.attempts, 2);
  t.equal(finalWeight(home, 'killed'), fakeWeightAfter(80), 'bit-identical to an uninterrupted run');
  t.match(fs.readFileSync(path.join(home, 'runs', 'killed', RUN_OUTPUT_LOG), 'utf8'), `resuming from checkpoint at step ${checkpoint.step}`);
  second.child.process.kill('SIGTERM');
  t.equal((await second.child.exited).code, 0);
});

t.test('a second daemon on the same home is refused while the first runs', async (t) => {
  const home = path.join(tempDir('cigl-restart-'), 'home');
  const first = await startTestDaemon({ home });
  t.teardown(() => first.stop());
  await t.rejects(startTestDaemon({ home }), /another daemon \(pid \d+\) is serving/);
  const child = spawnNode(CHILD, ['--home', home, '--port', '0']);
  const exit = await child.exited;
  t.equal(exit.code, 1);
  t.match(exit.stderr, /another daemon/);
});
