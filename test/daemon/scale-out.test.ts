import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { segmentFiles } from '../../src/sinks/arrow-log';
import { skip, startFleet } from './fleet';

/**
 * Scaling out on Redis: a sweep across 3 daemons, each run done exactly once; a poisoned run failed after its retries.
 * See fleet.ts: real `cigl daemon` processes on a real redis-server, sharing one runs folder.
 */
t.test('scale-out on Redis: a sweep of 6 on 3 daemons, and a poisoned run', { skip }, async (t) => {
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

  for (const [pid, child] of fleet.daemons) {
    child.process.kill('SIGTERM');
    const exit = await child.exited;
    t.equal(exit.code, 0, `daemon ${pid} stops cleanly (stderr: ${exit.stderr.slice(-300)})`);
  }
  fleet.daemons.clear();
});
