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

/** The first step the resumed segment logged (it must continue from the checkpoint, not start over). */
function resumedFrom(runDir: string): number {
  const segments = segmentFiles(runDir, 'metrics');
  if (segments.length !== 2) throw new Error(`expected 2 metric segments, found ${segments.length}`);
  const rows = rowsFromTable(metricsSpec, readStreamTolerant(fs.readFileSync(segments[1]), segments[1]).table, segments[1]);
  return Math.min(...rows.filter((r) => r.phase === 'train').map((r) => r.step));
}

t.test('cigl daemon (real CLI, real job): SIGTERM mid-run exits 0 with a checkpoint; restarted, the run resumes and finishes', async (t) => {
  const ws = realJobWorkspace();
  t.teardown(ws.cleanup);
  const home = path.join(ws.dir, 'home');
  const first = await spawnDaemon(home, ws.dataRoot);
  t.teardown(() => first.child.process.kill('SIGKILL'));
  t.equal((await postJson(first.url, '/runs', { pipeline: 'cigl', config: ws.config('stopped', 4) }, first.token)).status, 201);
  await waitForRun(first.url, 'stopped', (r) => r.state === 'running' && listCheckpoints(path.join(home, 'runs', 'stopped', 'checkpoints')).length > 0);
  first.child.process.kill('SIGTERM');
  const exit = await first.child.exited;
  t.equal(exit.code, 0, `exit 0 (stderr: ${exit.stderr.slice(-500)})`);
  const saved = queueState(home, 'stopped');
  t.match(saved, { state: 'queued', interrupted: true });
  const checkpoint = listCheckpoints(path.join(home, 'runs', 'stopped', 'checkpoints'))[0];
  t.equal(checkpoint.step, saved.step, `the job checkpointed where it stopped (step ${saved.step})`);
  t.ok(saved.step! < 20, 'part-way');

  const second = await spawnDaemon(home, ws.dataRoot);
  t.teardown(() => second.child.process.kill('SIGKILL'));
  const done = await waitForRun(second.url, 'stopped', (r) => r.state === 'completed');
  t.equal(done.attempts, 2);
  t.equal(done.step, 20);
  t.ok(done.summary, 'finished with its summary');
  t.equal(resumedFrom(path.join(home, 'runs', 'stopped')), checkpoint.step, 'training continued from the checkpoint');
  second.child.process.kill('SIGTERM');
  t.equal((await second.child.exited).code, 0);
});

t.test('cigl daemon (real job): kill -9 mid-run; the restarted daemon resumes the run from its newest checkpoint', async (t) => {
  const ws = realJobWorkspace();
  t.teardown(ws.cleanup);
  const home = path.join(ws.dir, 'home');
  const first = await spawnDaemon(home, ws.dataRoot);
  t.equal((await postJson(first.url, '/runs', { pipeline: 'rigl', config: ws.config('killed', 4) }, first.token)).status, 201);
  await waitForRun(first.url, 'killed', (r) => r.state === 'running' && listCheckpoints(path.join(home, 'runs', 'killed', 'checkpoints')).length > 0);
  first.child.process.kill('SIGKILL');
  t.equal((await first.child.exited).signal, 'SIGKILL');
  t.equal(queueState(home, 'killed').state, 'running', 'the queue file still says running');
  const checkpoint = listCheckpoints(path.join(home, 'runs', 'killed', 'checkpoints'))[0];

  const second = await spawnDaemon(home, ws.dataRoot);
  t.teardown(() => second.child.process.kill('SIGKILL'));
  const done = await waitForRun(second.url, 'killed', (r) => r.state === 'completed');
  t.equal(done.attempts, 2);
  t.equal(done.method, 'rigl');
  t.equal(done.step, 20);
  t.equal(resumedFrom(path.join(home, 'runs', 'killed')), checkpoint.step, `training continued from the checkpoint at step ${checkpoint.step}`);
  second.child.process.kill('SIGTERM');
  t.equal((await second.child.exited).code, 0);
});
