import * as path from 'node:path';
import type { Test } from 'tap';
import { RedisRunQueue } from '../../src/daemon/redis-run-queue';
import type { RunRecord } from '../../src/daemon/run-queue';
import { listCheckpoints } from '../../src/sinks/checkpoint';
import { spawnNode, type Child } from '../helpers/child-process';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server';
import { ciglBin, tinyRunWorkspace } from '../helpers/tiny-run';

/**
 * The fleet of the scale-out tests: real `cigl daemon` processes as workers of one BullMQ queue on a
 * real redis-server (started on loopback for the test, with an fsynced append-only file so that it can be
 * restarted), sharing one runs folder, fed by `cigl sweep --queue`. The training job is the real one on
 * a tiny data set. Locks last 10 s, so a dead daemon's run moves on within seconds.
 */

/** Why the scale-out tests are skipped here, if they are. */
export const skip = redisUnavailable();
// Long enough that a live daemon on a heavily loaded machine keeps its locks; short enough for a test.
const LOCK_MS = 10_000;

export interface Fleet {
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

/** A redis-server, a shared runs folder and the tiny workspace; daemons are spawned on demand and killed at teardown. */
export async function startFleet(t: Test): Promise<Fleet> {
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
      const child = spawnNode(ciglBin, ['daemon', '--home', home, '--port', '0', '--queue', redis.url, '--runs-dir', runsDir, '--lock-duration', String(LOCK_MS), '--data-root', ws.dir]);
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
      });
      return records;
    },
  };
}

/** Polls until `condition` holds; no deadline of its own (tap's test timeout ends a test that hangs). */
async function waitForAsync(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((r) => setTimeout(r, 100));
}

export const newestCheckpoint = (runDir: string) => listCheckpoints(path.join(runDir, 'checkpoints'))[0]?.step ?? -1;
export const pidOf = (worker: string | undefined) => Number(worker?.split(':').at(-1));

