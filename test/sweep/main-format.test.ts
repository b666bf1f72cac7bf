import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { copySweepArtefacts, readSweepArtefacts } from '../../src/sweep/artefacts';
import { reproductionReport } from '../../src/sweep/report';
import { loadStudy } from '../../src/sweep/study';
import { repoRoot } from '../../src/util/paths';

/**
 * The study's sweeps are being written by the code of main before issue 18 (its stage names, no named
 * headline): the report generator must read them. The fixture is such a sweep (see its README).
 */
const fixture = path.join(repoRoot, 'test', 'sweep', 'main-format', 'main-tiny');
const raw = (run: string) => JSON.parse(fs.readFileSync(path.join(fixture, run, 'summary.json'), 'utf8')) as { results: { stage: string; accuracy: number; ece: Record<string, number>; temperature?: number }[] };

t.test("main's summaries are read in today's vocabulary, numbers unchanged", async (t) => {
  t.same(raw('cigl-d0.1-s0').results.map((r) => r.stage), ['before averaging', 'live + recomputed BN', 'after averaging', 'after temperature scaling'], 'the fixture has the old names');
  t.same(raw('rigl-d0.1-s0').results.map((r) => r.stage), ['final', 'after temperature scaling']);
  const { summaries } = readSweepArtefacts(fixture);
  const byName = Object.fromEntries(summaries.map((s) => [s.runName, s]));
  t.same(byName['cigl-d0.1-s0'].results.map((r) => r.stage), ['live', 'live, recomputed BN', 'after averaging', 'after temperature scaling']);
  t.same(byName['rigl-d0.1-s0'].results.map((r) => r.stage), ['live', 'after temperature scaling']);
  t.same(summaries.map((s) => s.headline), ['live', 'live', 'after averaging'], 'the headline named: the model before temperature scaling');
  t.equal(byName['cigl-d0.1-s0'].results[3].scaled, 'after averaging', 'the scaled model named');
  t.same(byName['cigl-d0.1-s0'].results.map((r) => [r.accuracy, r.ece['15']]), raw('cigl-d0.1-s0').results.map((r) => [r.accuracy, r.ece['15']]), 'numbers as written');
});

t.test("the report is built from main's sweep, with today's stage names, and its copy regenerates it", async (t) => {
  const root = t.testdir();
  const study = await loadStudy({ main: fixture });
  const md = reproductionReport(study, { outDir: root });
  const cigl = raw('cigl-d0.1-s0').results.find((r) => r.stage === 'after averaging')!;
  const rigl = raw('rigl-d0.1-s0').results.find((r) => r.stage === 'final')!;
  t.match(md, new RegExp(`\\n\\| cigl +\\| +90% \\|[^\\n]*${cigl.ece['15'].toFixed(4)}`), "CigL's result: the model after averaging");
  t.match(md, new RegExp(`\\n\\| rigl +\\| +90% \\|[^\\n]*${rigl.ece['15'].toFixed(4)}`), "RigL's: its live model");
  t.match(md, new RegExp(`\\| cigl +\\| +90% \\| after averaging +\\|[^\\n]*${cigl.ece['15'].toFixed(4)}`), 'the stage table names it');
  t.match(md, /the BatchNorm recompute alone \("live, recomputed BN" − "live"\)/, 'inside CigL, in the vocabulary');
  t.notMatch(md, /before averaging|live \+ recomputed BN/, 'no old name left');

  const copy = path.join(root, 'assets', 'main-tiny');
  await copySweepArtefacts(fixture, copy);
  const again = reproductionReport(await loadStudy({ main: copy }), { outDir: root });
  const fromCopy = reproductionReport(await loadStudy({ main: copy }), { outDir: root });
  t.equal(again, fromCopy, 'the copy reads the same twice');
  t.match(again, new RegExp(`after averaging +\\|[^\\n]*${cigl.ece['15'].toFixed(4)}`), 'and has the same numbers');
});
