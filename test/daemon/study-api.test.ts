import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { readSegmentRows, metricsSpec } from '../../src/sinks/arrow-log';
import { readRunSummary } from '../../src/sinks/summary';
import { thinByMean } from '../../src/daemon/study-curves';
import { fakeConfig, postJson, request, startTestDaemon, tempDir } from './client';
import { FAKE_STEPS_PER_EPOCH } from './fake-train-job';
import { writeSyntheticRun } from './synthetic-study';

/** GET /study and GET /study/curves: what they list and serve, and what they refuse. */

t.test('GET /study: queue runs with their results, folder runs, local sweep runs; GET /study/curves: their curves', async (t) => {
  const home = path.join(tempDir('cigl-study-api-'), 'home');
  const runsDir = path.join(home, 'runs');
  // A run folder no queue owns, and a local sweep (sweep.json and its run folders) in the runs folder.
  writeSyntheticRun(runsDir, { id: 'by-hand', method: 'rigl', density: 0.1, seed: 3 }, { epochs: 2 });
  const sweepDir = path.join(runsDir, 'local');
  const swept = writeSyntheticRun(sweepDir, { id: 'cigl-d0.05-s0', method: 'cigl', density: 0.05, seed: 0 }, { epochs: 2 });
  const config = JSON.parse(fs.readFileSync(path.join(swept, 'config.json'), 'utf8'));
  const pending = { ...config, output: { runName: 'cigl-d0.05-s1' }, seed: 1 };
  fs.writeFileSync(path.join(sweepDir, 'sweep.json'), JSON.stringify({
    format: 1, status: 'running',
    runs: [
      { runName: 'cigl-d0.05-s0', label: 'cigl', method: 'cigl', density: 0.05, seed: 0, configHash: 'x', state: 'completed', config },
      { runName: 'cigl-d0.05-s1', label: 'cigl', method: 'cigl', density: 0.05, seed: 1, configHash: 'y', state: 'pending', config: pending },
    ],
  }));
  const d = await startTestDaemon({ home });
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('q1', 2, { sparse: { method: 'cigl', density: 0.2 }, seed: 4 }))).status, 201);
  await d.waitForRun('q1', (r) => r.state === 'completed');

  const res = await request(d.url, '/study');
  t.equal(res.status, 200);
  t.equal(res.headers['cache-control'], 'no-store');
  const study = res.json();
  const byId = new Map<string, any>(study.runs.map((r: { id: string }) => [r.id, r]));
  t.same([...byId.keys()].sort(), ['by-hand', 'local.cigl-d0.05-s0', 'local.cigl-d0.05-s1', 'q1']);
  t.match(byId.get('q1'), { source: 'queue', state: 'completed', method: 'cigl', density: 0.2, seed: 4, step: 2 * FAKE_STEPS_PER_EPOCH, worker: String });
  const summary = readRunSummary(path.join(runsDir, 'q1', 'summary.json'));
  const stage = (name: string) => summary.results.find((r) => r.stage === name)!;
  t.same(byId.get('q1').averaged, { accuracy: stage('after averaging').accuracy, ece15: stage('after averaging').ece['15'], ece10: stage('after averaging').ece['10'], nll: stage('after averaging').nll, brier: stage('after averaging').brier }, 'averaged numbers from summary.json');
  t.equal(byId.get('q1').scaled.temperature, stage('after temperature scaling').temperature, 'the temperature-scaled model with its T');
  t.same(byId.get('q1').final, byId.get('q1').averaged, 'the headline is the averaged model');
  t.match(byId.get('by-hand'), { source: 'folder', state: 'completed', method: 'rigl', seed: 3, sweep: undefined });
  t.match(byId.get('local.cigl-d0.05-s0'), { source: 'sweep', sweep: 'local', state: 'completed' });
  t.match(byId.get('local.cigl-d0.05-s1'), { source: 'sweep', sweep: 'local', state: 'queued', live: undefined }, 'a pending sweep run without a folder: queued');
  t.ok(study.settings.every((k: string) => !k.startsWith('output.')), `settings that differ: ${study.settings.join(', ')}`);
  t.ok(study.settings.includes('average.enabled'), 'averaging (on for cigl, off for rigl) differs');
  t.notOk(study.settings.includes('sparse.density'), 'the density is a field of every row, not a setting column');

  const curves = await request(d.url, '/study/curves?runs=q1,by-hand,local.cigl-d0.05-s1');
  t.equal(curves.status, 200, curves.text);
  const [q1, byHand, notStarted] = curves.json().runs;
  t.equal(q1.id, 'q1');
  const logged = readSegmentRows(path.join(runsDir, 'q1'), 'metrics', metricsSpec).filter((r) => r.phase === 'train' && r.metric === 'loss');
  t.same(q1.metrics['train/loss'][0], logged.map((r) => r.step), 'every logged training step');
  t.same(q1.metrics['train/loss'][1], logged.map((r) => Number(r.value.toPrecision(6))), 'the values, to 6 digits');
  t.equal(q1.metrics['val/ece15'][0].length, 2, 'one validation ECE per epoch');
  t.same(q1.mask.layers, ['conv1', 'fc1']);
  t.equal(q1.mask.steps.length, 4, 'a mask update every 5 steps');
  t.same(q1.mask.pruned, [[10, 10, 10, 10], [11, 11, 11, 11]], 'pruned counts per layer and update, as the fake job logs them');
  t.match(q1.reliability, { split: 'test', stage: 'after averaging', bins: 15 });
  t.equal(q1.reliability.before.length, 15);
  t.equal(q1.reliability.after.length, 15, 'and at the fitted temperature');
  t.equal(byHand.mask.layers.length, 3, 'a folder run has its curves too');
  t.same(notStarted, { id: 'local.cigl-d0.05-s1', metrics: {}, mask: { layers: [], steps: [], pruned: [], grown: [], density: [] } }, 'a run not started: empty curves');
  const thinned = (await request(d.url, '/study/curves?runs=by-hand&points=10')).json().runs[0].metrics['train/loss'];
  t.equal(thinned[0].length, 10, '20 steps thinned to 10 points');
  t.equal(thinned[0].at(-1), 19, 'the last step kept');
});

t.test('thinByMean: equal runs of consecutive points averaged, the last point kept', async (t) => {
  t.same(thinByMean([[0, 1], [1, 3], [2, 5], [3, 7], [4, 9]], 2), [[2, 4], [3, 8]]);
  t.same(thinByMean([[0, 1], [1, 2]], 10), [[0, 1], [1, 2]], 'fewer points than the limit: as they are');
});

t.test('the study endpoints refuse bad requests and what lies outside the runs folder; reads need no token', async (t) => {
  const home = path.join(tempDir('cigl-study-bad-'), 'home');
  const outside = writeSyntheticRun(tempDir('cigl-outside-'), { id: 'secret', method: 'rigl', density: 0.1, seed: 0 }, { epochs: 1 });
  fs.mkdirSync(path.join(home, 'runs', 'linked'), { recursive: true });
  fs.mkdirSync(path.join(home, 'runs', 'sw'), { recursive: true });
  fs.symlinkSync(path.join(outside, 'config.json'), path.join(home, 'runs', 'linked', 'config.json'));
  fs.symlinkSync(outside, path.join(home, 'runs', 'whole-link'));
  // A local sweep whose run folder is a symlink out of the runs folder: listed (from sweep.json), its files not served.
  const sweepDir = path.join(home, 'runs', 'sw');
  fs.symlinkSync(outside, path.join(sweepDir, 'r0'));
  const config = JSON.parse(fs.readFileSync(path.join(outside, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(sweepDir, 'sweep.json'), JSON.stringify({ format: 1, status: 'completed', runs: [{ runName: 'r0', label: 'rigl', method: 'rigl', density: 0.1, seed: 0, configHash: 'x', state: 'completed', config }] }));
  const d = await startTestDaemon({ home });
  t.teardown(() => d.stop());
  const listed = (await request(d.url, '/study')).json().runs;
  t.same(listed.map((r: { id: string }) => r.id), ['sw.r0'], 'config.json files resolving outside the runs folder are not read');
  t.equal(listed[0].final, undefined, 'nor the summary of a sweep run folder that leads out of it');
  t.same((await request(d.url, '/study/curves?runs=sw.r0')).json().runs[0].metrics, {}, 'nor its logs');

  const bad = async (target: string, status: number, field: RegExp) => {
    const res = await request(d.url, target);
    t.equal(res.status, status, `${target}: ${res.text.trim()}`);
    t.match(res.json().problems?.[0]?.field ?? res.json().error, field);
  };
  await bad('/study/curves', 400, /runs/);
  await bad('/study/curves?runs=', 400, /runs/);
  await bad('/study/curves?runs=..%2Fetc', 400, /runs/);
  await bad('/study/curves?runs=a,,b', 400, /runs/);
  await bad(`/study/curves?runs=${Array.from({ length: 201 }, (_, i) => `r${i}`).join(',')}`, 400, /runs/);
  await bad('/study/curves?runs=nobody&points=5', 400, /points/);
  await bad('/study/curves?runs=nobody&points=many', 400, /points/);
  await bad('/study/curves?runs=nobody', 404, /runs/);
  await bad('/study?sweep=x', 400, /query/);
  t.equal((await postJson(d.url, '/study', {}, d.token)).status, 405, 'the study is read-only');
  t.equal((await request(d.url, '/study', { headers: { authorization: 'Bearer wrong' } })).status, 200, 'reads need no token, as GET /runs');
});
