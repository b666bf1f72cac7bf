import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalJson, configDiff, type RunConfig } from '../cli/config';
import { formatDuration } from '../cli/progress';
import { formatTable } from '../cli/summary-table';
import type { RunSummary } from '../sinks/summary';
import { repoRoot } from '../util/paths';
import { checkClaims, type ClaimVerdict } from './claims';
import {
  binCountsOf,
  COMPARISON_FILES,
  compareRuns,
  formatComparisonTable,
  formatSparsity,
  formatStats,
  headlineBins,
  headlineResult,
  meanStd,
  type ComparisonGroup,
  type MetricStats,
} from './comparison';
import { PLOT_FILES, writeSweepOutputs } from './outputs';
import { readRunSummary, readSweepRecord, SUMMARY_FILE, SWEEP_RECORD, type SweepRecord } from './record';

/**
 * docs/REPRODUCTION.md, written only from a sweep directory's artefacts (sweep.json, the runs'
 * summary.json, the plot and the runs' reliability diagrams): the mean ± std table per method ×
 * sparsity, the ECE-vs-sparsity plot, reliability diagrams at the highest sparsity, the command and
 * configuration, the wall-clock cost, the claims' verdicts (computed by claims.ts), the ablations, the
 * validation choice of CigL's p (from a second sweep), and the paper's numbers beside ours.
 */

/** The paper's CIFAR-10 numbers (mean of 3 runs), per sparsity. */
export const PAPER_TABLE3 = {
  citation:
    'Lei et al., "Calibrating the Rigged Lottery: Making All Tickets Reliable", ICLR 2023, Table 3 (CIFAR-10, mean of 3 runs), ' +
    'as transcribed in ../shared/docs/cigl-algorithm.md',
  sparsities: [0.8, 0.9, 0.95, 0.99],
  resnet50: {
    rigl: { accuracy: [94.02, 93.84, 93.19, 91.31], ece: [0.0423, 0.0441, 0.0504, 0.0571] },
    cigl: { accuracy: [94.75, 94.56, 94.2, 92.42], ece: [0.0356, 0.0361, 0.0385, 0.0298] },
  },
  wrn22x2: {
    rigl: { ece: [0.0319, 0.0272, 0.0235, 0.015] },
    cigl: { ece: [0.0178, 0.0159, 0.0131, 0.0101] },
  },
  /** The released code computes ECE with 10 equal-width bins. */
  eceBins: '10',
} as const;

/** Per-run files copied next to the report (all small); the run's other outputs stay in the run directory. */
const RUN_FILES = [SUMMARY_FILE, 'config.json', 'reliability.png', 'reliability.svg', 'reliability.arrow'];

export interface SweepArtefacts {
  readonly dir: string;
  readonly record: SweepRecord;
  /** Summaries of the finished runs, in sweep order. */
  readonly summaries: readonly RunSummary[];
}

/** The record and the summaries of every finished run (a summary.json whose hash matches the record). */
export function readSweepArtefacts(dir: string): SweepArtefacts {
  const record = readSweepRecord(dir);
  const summaries = record.runs.flatMap((run) => {
    const file = path.join(dir, run.runName, SUMMARY_FILE);
    if (!fs.existsSync(file)) {
      if (run.state === 'completed') throw new Error(`${path.join(dir, SWEEP_RECORD)} says ${run.runName} completed, but ${file} is missing`);
      return [];
    }
    const summary = readRunSummary(file);
    return summary.configHash === run.configHash ? [summary] : [];
  });
  return { dir, record, summaries };
}

/**
 * Copies a sweep's small artefacts (sweep.json, and per run summary.json, config.json and the reliability
 * diagram) to `to`, and writes the comparison and the plot there afresh from them, so that the copy is a
 * sweep directory of its own from which the report can be regenerated.
 */
export async function copySweepArtefacts(from: string, to: string): Promise<SweepArtefacts> {
  const source = readSweepArtefacts(from);
  if (path.resolve(from) === path.resolve(to)) return source;
  for (const run of source.record.runs) {
    for (const name of RUN_FILES) {
      const file = path.join(from, run.runName, name);
      if (!fs.existsSync(file)) continue;
      fs.mkdirSync(path.join(to, run.runName), { recursive: true });
      fs.copyFileSync(file, path.join(to, run.runName, name));
    }
  }
  await writeSweepOutputs(to, source.record, source.summaries);
  return readSweepArtefacts(to);
}

// ---------------------------------------------------------------------------------------------------
// Choice of p

export interface RateResult {
  readonly p: number;
  readonly label: string;
  readonly accuracy: MetricStats;
  readonly ece: MetricStats;
}

export interface RateChoice {
  readonly rates: readonly RateResult[];
  readonly chosen?: number;
  readonly split: string;
  readonly rule: string;
}

/**
 * CigL's p from a sweep over it: among the rates whose mean accuracy is within `tolerance` (0.005, half a
 * point) of the best rate's, the one with the lowest mean ECE (headline stage, `bins` bins).
 */
export function chooseRandomMaskRate(sweep: SweepArtefacts, bins: string, tolerance = 0.005): RateChoice {
  const rateOf = new Map(sweep.record.runs.map((r) => [r.runName, r.config.sparse.randomMaskRate]));
  const byRate = new Map<number, RunSummary[]>();
  for (const s of sweep.summaries.filter((x) => x.method === 'cigl')) {
    const p = rateOf.get(s.runName);
    if (p !== undefined) byRate.set(p, [...(byRate.get(p) ?? []), s]);
  }
  const rates = [...byRate.entries()]
    .sort(([a], [b]) => a - b)
    .flatMap(([p, runs]) => {
      const results = runs.map((r) => headlineResult(r)!);
      const eces = results.map((r) => r.ece[bins]).filter((v): v is number => v !== undefined);
      if (eces.length === 0) return [];
      return [{ p, label: `p = ${p}`, accuracy: meanStd(results.map((r) => r.accuracy)), ece: meanStd(eces) }];
    });
  const split = [...new Set(sweep.summaries.map((s) => s.split))].join('/');
  const rule = `lowest mean ECE (${bins} bins, before temperature scaling) among the rates whose mean accuracy is within ${(tolerance * 100).toFixed(1)} points of the best rate's`;
  if (rates.length === 0) return { rates, split, rule };
  const best = Math.max(...rates.map((r) => r.accuracy.mean));
  const eligible = rates.filter((r) => r.accuracy.mean >= best - tolerance - 1e-12);
  const chosen = eligible.reduce((a, b) => (b.ece.mean < a.ece.mean ? b : a)).p;
  return { rates, chosen, split, rule };
}

// ---------------------------------------------------------------------------------------------------
// The report

export interface ReportOptions {
  /** Directory of the Markdown file: links to the plot and the diagrams are relative to it. */
  readonly outDir: string;
  /** The validation sweep over CigL's p. */
  readonly pSweep?: SweepArtefacts;
  /** How this report was generated, shown in it. */
  readonly reportCommand?: string;
}

export function reproductionReport(main: SweepArtefacts, options: ReportOptions): string {
  const { record, summaries } = main;
  if (summaries.length === 0) throw new Error(`${main.dir}: no finished runs to report on`);
  const groups = compareRuns(summaries);
  const bins = headlineBins(summaries)!;
  const allBins = binCountsOf(summaries);
  const link = (file: string) => path.relative(options.outDir, file).split(path.sep).join('/');
  const models = [...new Set(summaries.map((s) => s.model))].join(', ');
  const splits = [...new Set(summaries.map((s) => s.split))].join('/');
  const verdicts = allBins.flatMap((b) => checkClaims(groups, b));
  const primary = verdicts.filter((v) => v.bins === bins);
  const counts = countStates(record);
  const out: string[] = [];

  out.push('# Reproducing CigL on CIFAR-10', '');
  out.push(
    `_Generated from the outputs of the sweep in \`${link(main.dir)}\`${options.reportCommand ? ` by \`${options.reportCommand}\`` : ''}; ` +
      'every number below is computed from those files. Do not edit by hand: re-run the generator._',
    '',
  );
  out.push(
    `Sweep status: **${record.status}**, ${counts.completed} of ${record.runs.length} runs finished` +
      `${counts.failed ? `, ${counts.failed} failed` : ''}${counts.pending ? `, ${counts.pending} not run yet` : ''}${counts.stopped ? `, ${counts.stopped} stopped` : ''}. ` +
      `Model ${models}; results on the ${splits} split; mean ± sample standard deviation over seeds.`,
    '',
  );

  out.push('## Do the paper\'s claims hold here?', '');
  for (const v of primary) out.push(`- ${v.statement}`, ...v.checks.map((c) => `  - ${c.holds ? 'holds' : 'does not hold'} ${c.detail}`));
  const others = verdicts.filter((v) => v.bins !== bins);
  for (const v of others) {
    const same = primary.find((p) => p.claim === v.claim)?.verdict === v.verdict;
    out.push(`- With ${v.bins} bins: claim (${v.claim}) ${same ? `gives the same verdict (${v.verdict})` : `**${v.verdict}** (differs from the ${bins}-bin verdict)`}.`);
  }
  out.push('', regimeNote(record), '');

  out.push('## Results', '');
  out.push('Headline stage: the last model before temperature scaling (CigL: after weight and mask averaging), as the paper compares.', '');
  out.push(formatComparisonTable(groups.map((g) => ({ group: g, stage: g.headline })), false));
  const scaled = groups.flatMap((g) => g.stages.filter((s) => s.calibrated).map((s) => ({ group: g, stage: s })));
  if (scaled.length > 0) out.push('After temperature scaling (fitted on the validation split):', '', formatComparisonTable(scaled, true));
  out.push(`All stages of every run: [${COMPARISON_FILES.markdown}](${link(path.join(main.dir, COMPARISON_FILES.markdown))}); as Arrow: \`${COMPARISON_FILES.arrow}\` (per group), \`${COMPARISON_FILES.runs}\` (per run).`, '');

  out.push('## ECE vs sparsity', '');
  const plot = path.join(main.dir, PLOT_FILES.png);
  out.push(fs.existsSync(plot) ? `![ECE vs sparsity](${link(plot)})` : `_No plot: ${PLOT_FILES.png} is missing from ${link(main.dir)}._`, '');

  out.push(...reliabilitySection(main, groups, link));
  out.push(...ablationSection(groups, bins));
  out.push(...pSection(main, options.pSweep, bins, link));
  out.push(...paperSection(groups, allBins.includes(PAPER_TABLE3.eceBins) ? PAPER_TABLE3.eceBins : bins, models));
  out.push(...setupSection(main, options.pSweep));
  return out.join('\n').replace(/\n{3,}/g, '\n\n');
}

function countStates(record: SweepRecord): Record<'completed' | 'failed' | 'pending' | 'stopped', number> {
  const n = { completed: 0, failed: 0, pending: 0, stopped: 0 };
  for (const r of record.runs) n[r.state]++;
  return n;
}

/** Whether the dense model reached the over-confident regime the paper's claims are about. */
function regimeNote(record: SweepRecord): string {
  const epochs = [...new Set(record.runs.map((r) => r.config.train.epochs))].join('/');
  return (
    'The paper measures after 250 epochs, when the models over-fit (training accuracy near 100%) and become over-confident. ' +
    `This sweep trained for ${epochs} epochs; a shorter budget can leave the dense model under-fit and not yet over-confident, ` +
    'where claim (1) is not expected to show.'
  );
}

function reliabilitySection(main: SweepArtefacts, groups: readonly ComparisonGroup[], link: (f: string) => string): string[] {
  const sparse = groups.filter((g) => (g.label === 'rigl' || g.label === 'cigl') && g.density < 1);
  if (sparse.length === 0) return [];
  const density = Math.min(...sparse.map((g) => g.density));
  const picks = [groups.find((g) => g.label === 'dense'), ...['rigl', 'cigl'].map((l) => groups.find((g) => g.label === l && g.density === density))].filter(
    (g): g is ComparisonGroup => g !== undefined,
  );
  const out = [`## Reliability diagrams (dense, and RigL and CigL at ${formatSparsity(density)} sparsity)`, ''];
  out.push("First seed of each: the run's own reliability diagram (its summary's outputs say which model it shows).", '');
  for (const g of picks) {
    const runName = g.runNames[g.seeds.indexOf(Math.min(...g.seeds))];
    const summary = main.summaries.find((s) => s.runName === runName)!;
    const fromOutputs = Object.entries(summary.outputs).find(([label, p]) => /reliab/i.test(label) && p.endsWith('.png'))?.[1];
    const file = path.join(main.dir, runName, path.basename(fromOutputs ?? 'reliability.png'));
    const title = `${g.label}, ${formatSparsity(g.density)} sparse, seed ${summary.seed}`;
    out.push(fs.existsSync(file) ? `![${title}](${link(file)})` : `- ${title}: _no reliability diagram in ${link(path.dirname(file))}_`, '');
  }
  return out;
}

function ablationSection(groups: readonly ComparisonGroup[], bins: string): string[] {
  const ablations: [string, string][] = [
    ['cigl-no-random-mask', 'without the random mask (p = 0)'],
    ['cigl-no-averaging', 'without weight and mask averaging'],
  ];
  const rows = ablations.flatMap(([label, what]) =>
    groups
      .filter((g) => g.label === label)
      .flatMap((g) => {
        const full = groups.find((c) => c.label === 'cigl' && c.density === g.density);
        return full ? [{ g, full, what }] : [];
      }),
  );
  if (rows.length === 0) return [];
  const out = ['## Ablations', ''];
  out.push(formatComparisonTable([...new Set(rows.flatMap((r) => [r.full, r.g]))].map((g) => ({ group: g, stage: g.headline })), true));
  for (const { g, full, what } of rows) {
    const a = g.headline.ece[bins];
    const c = full.headline.ece[bins];
    if (!a || !c) continue;
    const dAcc = (g.headline.accuracy.mean - full.headline.accuracy.mean) * 100;
    out.push(
      `- CigL ${what} at ${formatSparsity(g.density)}: ECE ${formatStats(a, 4)} against ${formatStats(c, 4)} for full CigL ` +
        `(${a.mean > c.mean ? 'higher' : a.mean < c.mean ? 'lower' : 'equal'}), accuracy ${dAcc >= 0 ? '+' : '−'}${Math.abs(dAcc).toFixed(2)} points.`,
    );
  }
  out.push('');
  return out;
}

function pSection(main: SweepArtefacts, pSweep: SweepArtefacts | undefined, bins: string, link: (f: string) => string): string[] {
  const used = [...new Set(main.record.runs.filter((r) => r.label === 'cigl').map((r) => r.config.sparse.randomMaskRate))];
  const out = ["## CigL's random-mask rate p", ''];
  if (!pSweep) {
    out.push(`CigL ran with p = ${used.join(', ') || '(no CigL run)'}; no validation sweep over p was given to this report.`, '');
    return out;
  }
  const choice = chooseRandomMaskRate(pSweep, bins);
  out.push(`Chosen on the **${choice.split}** split (sweep \`${link(pSweep.dir)}\`), by the rule: ${choice.rule}.`, '');
  if (choice.split !== 'validation') out.push(`**Warning:** the p sweep's results are on the ${choice.split} split, so p was not chosen on held-out validation data.`, '');
  out.push(
    formatTable(
      ['p', 'Seeds', 'Accuracy (%)', `ECE (${bins} bins)`, 'Chosen'],
      choice.rates.map((r) => [String(r.p), String(r.ece.n), formatStats(r.accuracy, 2, 100), formatStats(r.ece, 4), r.p === choice.chosen ? 'yes' : '']),
      'markdown',
      ['r', 'r', 'r', 'r', 'l'],
    ),
  );
  if (choice.chosen === undefined) out.push('The p sweep has no finished CigL run: no choice yet.', '');
  else if (used.length === 1 && used[0] === choice.chosen) out.push(`The CigL runs above used the chosen p = ${choice.chosen}.`, '');
  else out.push(`**The CigL runs above used p = ${used.join(', ')}, not the chosen p = ${choice.chosen}**: set sparse.randomMaskRate in the preset and re-run them.`, '');
  const wall = totalWallTime(pSweep.summaries);
  out.push(`Cost of the p sweep: ${wall.text}.`, '');
  return out;
}

function paperSection(groups: readonly ComparisonGroup[], bins: string, models: string): string[] {
  const out = ['## Comparison with the paper', ''];
  out.push(
    `Paper: ${PAPER_TABLE3.citation}; ResNet-50 trained for 250 epochs. Here: ${models}, the budget in the setup below. ` +
      `Our ECE column uses ${bins} bins (the released code's ECE uses ${PAPER_TABLE3.eceBins}). ` +
      'Absolute numbers are not comparable across architectures and budgets; the direction and size of the CigL − RigL change is.',
    '',
  );
  const rows: string[][] = [];
  const change = (c: number, r: number) => `${c < r ? '−' : '+'}${Math.abs((100 * (c - r)) / r).toFixed(1)}%`;
  PAPER_TABLE3.sparsities.forEach((sparsity, i) => {
    const p = PAPER_TABLE3.resnet50;
    rows.push([`${sparsity * 100}%`, 'paper, ResNet-50', p.rigl.accuracy[i].toFixed(2), p.cigl.accuracy[i].toFixed(2), p.rigl.ece[i].toFixed(4), p.cigl.ece[i].toFixed(4), change(p.cigl.ece[i], p.rigl.ece[i])]);
    const w = PAPER_TABLE3.wrn22x2;
    rows.push(['', 'paper, WRN-22-2', '', '', w.rigl.ece[i].toFixed(4), w.cigl.ece[i].toFixed(4), change(w.cigl.ece[i], w.rigl.ece[i])]);
    const density = Number((1 - sparsity).toFixed(6));
    const rigl = groups.find((g) => g.label === 'rigl' && Math.abs(g.density - density) < 1e-9);
    const cigl = groups.find((g) => g.label === 'cigl' && Math.abs(g.density - density) < 1e-9);
    if (rigl || cigl) {
      const r = rigl?.headline;
      const c = cigl?.headline;
      rows.push([
        '',
        `this sweep, ${models}`,
        r ? formatStats(r.accuracy, 2, 100) : '–',
        c ? formatStats(c.accuracy, 2, 100) : '–',
        r?.ece[bins] ? formatStats(r.ece[bins], 4) : '–',
        c?.ece[bins] ? formatStats(c.ece[bins], 4) : '–',
        r?.ece[bins] && c?.ece[bins] ? change(c.ece[bins].mean, r.ece[bins].mean) : '–',
      ]);
    }
  });
  out.push(formatTable(['Sparsity', 'Source', 'RigL acc. (%)', 'CigL acc. (%)', 'RigL ECE', 'CigL ECE', 'CigL vs RigL ECE'], rows, 'markdown', ['l', 'l', 'r', 'r', 'r', 'r', 'r']));
  return out;
}

function totalWallTime(summaries: readonly RunSummary[]): { ms: number; text: string } {
  const timed = summaries.filter((s) => s.wallTimeMs !== undefined);
  const ms = timed.reduce((t, s) => t + s.wallTimeMs!, 0);
  const missing = summaries.length - timed.length;
  return {
    ms,
    text:
      `${formatDuration(ms)} of training wall time over ${timed.length} run${timed.length === 1 ? '' : 's'}` +
      `${timed.length > 0 ? ` (${formatDuration(ms / timed.length)} per run)` : ''}${missing > 0 ? `; ${missing} run${missing === 1 ? '' : 's'} did not record it` : ''}`,
  };
}

function setupSection(main: SweepArtefacts, pSweep: SweepArtefacts | undefined): string[] {
  const { record } = main;
  const first = record.runs[0].config;
  const out = ['## Setup, command and cost', ''];
  out.push(`- Command: ${record.command ? `\`${record.command}\`` : '_not recorded (the sweep was not started by `cigl sweep`)_'}`);
  if (pSweep?.record.command) out.push(`- The p sweep: \`${pSweep.record.command}\``);
  out.push(`- Data: \`${displayPath(first.data.path)}\` (${first.data.format}), ${first.data.validationFraction * 100}% of the training split held out for validation`);
  out.push(
    `- Training: ${first.train.epochs} epochs, batch ${first.data.batchSize}, lr ${first.optimiser.lr} (${first.optimiser.schedule}, ×${first.optimiser.gamma} at epochs ${first.optimiser.milestones.join(', ')}), ` +
      `mask updates every ${first.sparse.updateInterval} steps until ${first.sparse.endFraction * 100}% of training, averaging from epoch ${first.average.startEpoch} (CigL)`,
  );
  out.push(`- Cost: ${totalWallTime(main.summaries).text}.`);
  const varying = [...new Set(record.runs.flatMap((r) => configDiff(first, r.config).map((d) => d.path)))];
  out.push(`- Runs differ only in: ${varying.join(', ') || '(nothing)'}.`, '');
  out.push(
    formatTable(
      ['Run', 'State', 'Config hash'],
      record.runs.map((r) => [r.runName, r.state + (r.error ? `: ${r.error.replace(/\|/g, '\\|').slice(0, 120)}` : ''), r.configHash.slice(0, 16)]),
      'markdown',
    ),
  );
  out.push('<details><summary>Resolved configuration of the first run</summary>', '', '```json', JSON.stringify(JSON.parse(canonicalJson(withDisplayPaths(first))), null, 2), '```', '', '</details>', '');
  return out;
}

/** Inside or beside the repository (../shared/...): relative to its root, so the report reads the same on any machine. */
function displayPath(p: string): string {
  const relative = path.relative(repoRoot, p);
  return path.isAbsolute(relative) || relative.startsWith(`..${path.sep}..`) ? p : relative;
}

function withDisplayPaths(config: RunConfig): RunConfig {
  return { ...config, data: { ...config.data, path: displayPath(config.data.path) }, output: { ...config.output, runsDir: displayPath(config.output.runsDir) } };
}

export type { ClaimVerdict };
