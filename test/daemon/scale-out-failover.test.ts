import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { segmentFiles } from '../../src/sinks/arrow-log';
import { newestCheckpoint, pidOf, skip, startFleet } from './fleet';

/**
 * Scaling out on Redis, failures: a daemon killed mid-run (its run resumes elsewhere, bit-identical), Redis restarted mid-sweep.
 * See fleet.ts: real `cigl daemon` processes on a real redis-server, sharing one runs folder.
 */
t.test('scale-out on Redis: kill -9 of a daemon mid-run, then redis-server restarted mid-sweep', { skip }, async (t) => {
  const fleet = await startFleet(t);
  await Promise.all([fleet.spawnDaemon(), fleet.spawnDaemon()]);
  t.equal(fleet.daemons.size, 2, 'two daemons, one queue');

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
