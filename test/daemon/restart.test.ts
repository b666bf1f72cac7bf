import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { metricsSpec, segmentFiles } from '../../src/sinks/arrow-log';
import { readStreamTolerant, rowsFromTable } from '../../src/sinks/arrow-table';
import { listCheckpoints } from '../../src/sinks/checkpoint';
import { spawnNode, type Child } from '../helpers/child-process';
import { ciglBin } from '../helpers/tiny-run';
import { postJson, realJobWorkspace, waitForRun } from './client';

/** Restarts end to end: `cigl daemon` as users run it (the real CLI and training job), on a tiny data set. */

async function spawnDaemon(home: string, dataRoot: string): Promise<{ child: Child; url: string; token: string }> {
  const child = spawnNode(ciglBin, ['daemon', '--home', home, '--port', '0', '--data-root', dataRoot]);
  const line = await child.waitForLine((l) => l.includes('listening on'));
  const url = /(http:\/\/\S+?)\/?$/.exec(line)![1];
  return { child, url, token: fs.readFileSync(path.join(home, 'token'), 'utf8').trim() };
}

const queueState = (home: string, id: string) =>
  (JSON.parse(fs.readFileSync(path.join(home, 'queue.json'), 'utf8')).runs as { id: string; state: string; interrupted?: boolean; step?: number }[]).find((r) => r.id === id)!;

/** The first training step logged in metric segment `index` (a resumed attempt writes a new segment). */
function firstStepOfSegment(runDir: string, index: number): number {
  const file = segmentFiles(runDir, 'metrics')[index];
  const rows = rowsFromTable(metricsSpec, readStreamTolerant(fs.readFileSync(file), file).table, file);
  return Math.min(...rows.filter((r) => r.phase === 'train').map((r) => r.step));
}

const newestCheckpoint = (home: string, id: string) => listCheckpoints(path.join(home, 'runs', id, 'checkpoints'))[0]?.step ?? -1;

t.test('cigl daemon (real CLI and job): SIGTERM mid-run, then kill -9 mid-run; each restart resumes from the checkpoint, and the run finishes', async (t) => {
  const ws = realJobWorkspace();
  t.teardown(ws.cleanup);
  const home = path.join(ws.dir, 'home');
  const runDir = path.join(home, 'runs', 'restarted');

  // 1. A graceful stop: the job checkpoints where it is, the daemon exits 0, the run is queued again.
  const first = await spawnDaemon(home, ws.dataRoot);
  t.teardown(() => first.child.process.kill('SIGKILL'));
  t.equal((await postJson(first.url, '/runs', { pipeline: 'cigl', config: ws.config('restarted', 4) }, first.token)).status, 201);
  await waitForRun(first.url, 'restarted', (r) => r.state === 'running' && newestCheckpoint(home, 'restarted') >= 5);
  first.child.process.kill('SIGTERM');
  const exit = await first.child.exited;
  t.equal(exit.code, 0, `exit status 0 (stderr: ${exit.stderr.slice(-300)})`);
  const stopped = queueState(home, 'restarted');
  t.match(stopped, { state: 'queued', interrupted: true, attempts: 0 }, 'queued again, marked interrupted; the graceful stop used up no attempt');
  t.equal(newestCheckpoint(home, 'restarted'), stopped.step, `the job checkpointed where it stopped (step ${stopped.step})`);
  t.ok(stopped.step! < 20, 'part-way through the 20 steps');

  // 2. The restarted daemon resumes it; then it dies with kill -9 after another checkpoint.
  const second = await spawnDaemon(home, ws.dataRoot);
  t.teardown(() => second.child.process.kill('SIGKILL'));
  await waitForRun(second.url, 'restarted', (r) => r.state === 'running' && r.attempts === 1 && newestCheckpoint(home, 'restarted') > stopped.step!);
  second.child.process.kill('SIGKILL');
  t.equal((await second.child.exited).signal, 'SIGKILL');
  t.equal(queueState(home, 'restarted').state, 'running', 'the queue file still says running');
  const killedAt = newestCheckpoint(home, 'restarted');

  // 3. The next daemon finds it "running" with no owner, queues it and resumes it to the end.
  const third = await spawnDaemon(home, ws.dataRoot);
  t.teardown(() => third.child.process.kill('SIGKILL'));
  const done = await waitForRun(third.url, 'restarted', (r) => r.state === 'completed');
  t.equal(done.attempts, 2, 'the kill -9 counted an attempt, the graceful stop none');
  t.equal(done.step, 20);
  t.ok(done.summary, 'finished with its summary');
  t.ok(fs.existsSync(path.join(runDir, 'model', 'model.json')), 'and its model');
  t.equal(segmentFiles(runDir, 'metrics').length, 3, 'one metric log segment per attempt');
  t.equal(firstStepOfSegment(runDir, 1), stopped.step, 'the second attempt continued from the graceful-stop checkpoint');
  t.equal(firstStepOfSegment(runDir, 2), killedAt, 'the third from the newest checkpoint before the kill');
  third.child.process.kill('SIGTERM');
  t.equal((await third.child.exited).code, 0);
});
