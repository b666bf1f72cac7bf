import * as path from 'node:path';
import t from 'tap';
import { RedisRunQueue } from '../../src/daemon/redis-run-queue';
import { redisUnavailable, startRedis } from '../helpers/redis-server';
import { fakeConfig, request, startTestDaemon, tempDir } from './client';

/**
 * The study of a fleet: two daemons on one Redis queue with one shared runs folder (as fleet.ts, here
 * in one process with the fake job) train a sweep between them; either daemon's GET /study shows the
 * whole sweep as one study, with every run's results and curves, whichever daemon trained it.
 */
const skip = redisUnavailable();
const RUNS = [0.2, 0.1, 0.05].flatMap((density) => [0, 1].map((seed) => ({ id: `fleet.cigl-d${density}-s${seed}`, density, seed })));

t.test('a sweep spread over two daemons on Redis is one study on either dashboard', { skip }, async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const dir = tempDir('cigl-study-fleet-');
  const runsDir = path.join(dir, 'shared-runs');
  const daemon = (name: string) =>
    startTestDaemon({
      home: path.join(dir, name),
      runsDir,
      worker: name,
      queue: () => RedisRunQueue.open({ url: redis.url, pollMs: 100 }),
      queueName: redis.url,
      fake: { stepMs: 30 },
    });
  const a = await daemon('daemon-a');
  t.teardown(() => a.stop());
  const b = await daemon('daemon-b');
  t.teardown(() => b.stop());
  for (const run of RUNS) t.equal((await a.submit(fakeConfig(run.id, 2, { sparse: { method: 'cigl', density: run.density }, seed: run.seed }))).status, 201);
  for (const run of RUNS) await b.waitForRun(run.id, (r) => r.state === 'completed');

  for (const [name, d] of [['a', a], ['b', b]] as const) {
    const study = (await request(d.url, '/study')).json();
    t.same(study.runs.map((r: { id: string }) => r.id).sort(), RUNS.map((r) => r.id).sort(), `daemon ${name}: the whole sweep`);
    t.ok(study.runs.every((r: { state: string; sweep: string; final?: { ece15: number } }) => r.state === 'completed' && r.sweep === 'fleet' && r.final && r.final.ece15 >= 0), `daemon ${name}: every run completed with its results`);
  }
  const study = (await request(b.url, '/study')).json();
  const workers = new Set(study.runs.map((r: { worker: string }) => r.worker));
  t.same([...workers].sort(), ['daemon-a', 'daemon-b'], 'both daemons trained runs of the sweep');
  const trainedByA = study.runs.filter((r: { worker: string }) => r.worker === 'daemon-a').map((r: { id: string }) => r.id);
  const curves = (await request(b.url, `/study/curves?runs=${trainedByA.join(',')}`)).json().runs;
  t.ok(curves.every((c: { metrics: Record<string, number[][]> }) => c.metrics['train/loss'][0].length === 20), `daemon b serves the curves of the ${trainedByA.length} runs daemon a trained`);
});
