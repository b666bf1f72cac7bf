import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import { RedisRunQueue } from '../../src/daemon/redis-run-queue';
import type { RunRecord } from '../../src/daemon/run-queue';
import { segmentFiles } from '../../src/sinks/arrow-log';
import { listCheckpoints } from '../../src/sinks/checkpoint';
import { spawnNode, type Child } from '../helpers/child-process';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server';
import { ciglBin, tinyRunWorkspace, waitFor } from '../helpers/tiny-run';

/**
 * Scaling out end to end: real `cigl daemon` processes as workers of one BullMQ queue on a real
 * redis-server (started on loopback for the test, with an fsynced append-only file so that it can be
 * restarted), sharing one runs folder, fed by `cigl sweep --queue`. The training job is the real one on
 * a tiny data set. Locks last 4 s, so a dead daemon's run moves on after a few seconds.
 */
const skip = redisUnavailable();
const LOCK_MS = 4000;

interface Fleet {
  readonly redis: TestRedis;
  readonly queue: RedisRunQueue;
  readonly runsDir: string;
  readonly sweepsDir: string;
  readonly config: string;
  readonly daemons: Map<number, Child>;
  spawnDaemon(): Promise<Child>;
  /** `cigl sweep --queue` with the tiny config and these extra arguments. */
  sweep(args: readonly string[]): Child;
  waitForRuns(ids: readonly string[], done: (r: RunRecord) => boolean, what: string): Promise<RunRecord[]>;
}

async function startFleet(t: Test): Promise<Fleet> {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const redis = await startRedis({ persistent: true });
  t.teardown(() => redis.stop());
  const queue = await RedisRunQueue.open({ url: redis.url });
  t.teardown(() => queue.close());
  const runsDir = path.join(ws.dir, 'shared-runs');
  const sweepsDir = path.join(ws.dir, 'sweeps');
  const daemons = new Map<number, Child>();
  t.teardown(() => {
    for (const child of daemons.values()) child.process.kill('SIGKILL');
  });
  let homes = 0;
  return {
    redis,
    queue,
    runsDir,
    sweepsDir,
    config: ws.config,
    daemons,
    async spawnDaemon() {
      const home = path.join(ws.dir, `home-${homes++}`);
      const child = spawnNode(ciglBin, ['daemon', '--home', home, '--port', '0', '--queue', redis.url, '--runs-dir', runsDir, '--lock-duration', String(LOCK_MS)]);
      daemons.set(child.process.pid!, child);
      await child.waitForLine((l) => l.includes('listening on'));
      return child;
    },
    sweep(args) {
      return spawnNode(ciglBin, [
        'sweep', '--config', ws.config, '--queue', redis.url, '--output.runsDir', sweepsDir,
        '--train.epochs', '2', '--average.startEpoch', '1', '--train.checkpointEverySteps', '2', ...args,
      ]);
    },
    async waitForRuns(ids, done, what) {
      let records: RunRecord[] = [];
      await waitForAsync(async () => {
        const all = new Map((await queue.list()).map((r) => [r.id, r]));
        records = ids.map((id) => all.get(id)!).filter(Boolean);
        return records.length === ids.length && records.every(done);
      }, what);
      return records;
    },
  };
}

async function waitForAsync(condition: () => Promise<boolean>, what: string, timeoutMs = 180_000): Promise<void> {
  const start = Date.now();
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const newestCheckpoint = (runDir: string) => listCheckpoints(path.join(runDir, 'checkpoints'))[0]?.step ?? -1;
const pidOf = (worker: string | undefined) => Number(worker?.split(':').at(-1));

t.test('scale-out on Redis: 3 daemons, a sweep of 6, a poisoned run, kill -9 mid-run, Redis restarted mid-sweep', { skip }, async (t) => {
  const fleet = await startFleet(t);
  await Promise.all([fleet.spawnDaemon(), fleet.spawnDaemon(), fleet.spawnDaemon()]);
  t.equal(fleet.daemons.size, 3, 'three daemons, one queue');

  await t.test('a sweep of 6 runs across the 3 daemons: every run done exactly once, the comparison written', async (t) => {
    const sweep = fleet.sweep(['--methods', 'rigl,cigl', '--densities', '0.2,0.1,0.05', '--seeds', '0', '--output.runName', 'grid', '--wait']);
    const exit = await sweep.exited;
    t.equal(exit.code, 0, `cigl sweep --wait exits 0 (stderr: ${exit.stderr.slice(-500)})`);
    t.match(exit.stdout, /cigl/, 'and prints the table');
    const records = (await fleet.queue.list()).filter((r) => r.id.startsWith('grid.'));
    t.equal(records.length, 6);
    for (const r of records) {
      const runDir = path.join(fleet.runsDir, r.id);
      t.match(r, { state: 'completed', attempts: 1 }, `${r.id}: completed on its first claim, by ${r.worker}`);
      t.equal(segmentFiles(runDir, 'metrics').length, 1, `${r.id}: trained once (one metric log segment)`);
      t.ok(fs.existsSync(path.join(runDir, 'summary.json')), `${r.id}: its summary in the shared runs folder`);
    }
    t.comment(`runs per worker: ${JSON.stringify(Object.fromEntries([...new Set(records.map((r) => r.worker))].map((w) => [w, records.filter((r) => r.worker === w).length])))}`);
    for (const file of ['comparison.md', 'comparison.arrow', 'sweep.json']) t.ok(fs.existsSync(path.join(fleet.sweepsDir, 'grid', file)), `the sweep's ${file}`);
    t.equal((JSON.parse(fs.readFileSync(path.join(fleet.sweepsDir, 'grid', 'sweep.json'), 'utf8')) as { status: string }).status, 'completed');
  });

  await t.test('a poisoned run (its data folder is missing) ends failed with its error after the retry limit', async (t) => {
    const sweep = fleet.sweep(['--methods', 'cigl', '--densities', '0.2', '--seeds', '0', '--output.runName', 'poison', '--data.path', path.join(os.tmpdir(), 'cigl-no-such-data'), '--attempts', '2', '--wait']);
    const exit = await sweep.exited;
    t.equal(exit.code, 1, 'cigl sweep --wait exits 1');
    t.match(exit.stderr, /run cigl-d0\.2-s0 failed: .*cigl-no-such-data/, 'naming the run and its error');
    const record = (await fleet.queue.get('poison.cigl-d0.2-s0'))!;
    t.match(record, { state: 'failed', attempts: 2, error: /cigl-no-such-data/ }, 'failed after 2 attempts, not retried again');
  });

  await t.test('kill -9 of the daemon training a run: another daemon resumes it from its checkpoint, weights bit-identical to an uninterrupted run', async (t) => {
    const victimId = 'victim.cigl-d0.2-s0';
    const victimDir = path.join(fleet.runsDir, victimId);
    const longer = ['--methods', 'cigl', '--densities', '0.2', '--seeds', '0', '--train.epochs', '4', '--average.startEpoch', '2'];
    t.equal((await fleet.sweep([...longer, '--output.runName', 'victim']).exited).code, 0, 'queued');
    const [running] = await fleet.waitForRuns([victimId], (r) => r.state === 'running' && newestCheckpoint(victimDir) >= 4, 'the victim to checkpoint');
    const holder = fleet.daemons.get(pidOf(running.worker));
    t.ok(holder, `held by daemon ${running.worker}`);
    holder!.process.kill('SIGKILL');
    t.equal((await holder!.exited).signal, 'SIGKILL');
    fleet.daemons.delete(pidOf(running.worker));
    const killedAt = newestCheckpoint(victimDir);
    t.equal((await fleet.queue.get(victimId))!.state, 'running', 'still claimed by the dead daemon until its lock expires');

    t.equal((await fleet.sweep([...longer, '--output.runName', 'reference']).exited).code, 0, 'the same config queued again, to run uninterrupted');
    const [victim, reference] = await fleet.waitForRuns([victimId, 'reference.cigl-d0.2-s0'], (r) => r.state === 'completed', 'both runs to finish');
    t.match(victim, { attempts: 2 }, 'the victim was claimed twice');
    t.not(victim.worker, running.worker, `finished by another daemon (${victim.worker})`);
    t.equal(reference.attempts, 1, 'the reference ran once');
    const segments = segmentFiles(victimDir, 'metrics');
    t.equal(segments.length, 2, 'two attempts, one metric log segment each');
    t.ok(killedAt >= 4, `killed after the checkpoint of step ${killedAt}`);
    const referenceDir = path.join(fleet.runsDir, reference.id);
    for (const file of ['model/weights.bin', 'model/weights.cigl-sparse']) {
      const a = fs.readFileSync(path.join(victimDir, file));
      const b = fs.readFileSync(path.join(referenceDir, file));
      t.ok(a.equals(b), `${file} is bit-identical to the uninterrupted run's (${a.length} bytes)`);
    }
  });

  await t.test('redis-server killed and restarted mid-sweep: the sweep still completes', async (t) => {
    const sweep = fleet.sweep(['--methods', 'rigl,cigl', '--densities', '0.2', '--seeds', '1', '--output.runName', 'outage', '--wait']);
    const ids = ['outage.rigl-d0.2-s1', 'outage.cigl-d0.2-s1'];
    await fleet.waitForRuns(ids.slice(0, 1), (r) => r.state === 'running' && newestCheckpoint(path.join(fleet.runsDir, r.id)) >= 2, 'the first run to train');
    await fleet.redis.restart({ downMs: 1000 });
    t.pass('redis-server killed (kill -9) and started again on its append-only file');
    const exit = await sweep.exited;
    t.equal(exit.code, 0, `cigl sweep --wait, waiting across the restart, exits 0 (stderr: ${exit.stderr.slice(-500)})`);
    const records = await fleet.waitForRuns(ids, (r) => r.state === 'completed', 'the outage sweep');
    for (const r of records) t.ok(fs.existsSync(path.join(fleet.runsDir, r.id, 'summary.json')), `${r.id} finished (attempts ${r.attempts})`);
    t.ok(fs.existsSync(path.join(fleet.sweepsDir, 'outage', 'comparison.md')), 'and the comparison written');
  });

  for (const [pid, child] of fleet.daemons) {
    child.process.kill('SIGTERM');
    const exit = await child.exited;
    t.equal(exit.code, 0, `daemon ${pid} stops cleanly (stderr: ${exit.stderr.slice(-300)})`);
  }
  fleet.daemons.clear();
});
