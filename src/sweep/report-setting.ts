import * as path from 'node:path';
import * as fs from 'node:fs';
import { formatTable } from '../report/summary-table';
import { STAGES as STAGE_NAMES, type RunSummary, type StageResult } from '../sinks/summary';
import type { SweepArtefacts } from './artefacts';
import { checkClaims, describeDifference, type ClaimVerdict } from './claims';
import { formatComparisonTable, formatSparsity, formatStats, meanStd, type ComparisonGroup, type MetricStats, type StageStats } from './comparison';

/**
 * The report's blocks about one training setting (the main study, or the second setting): the results
 * table with every method also after temperature scaling, the claims' verdicts, CigL against temperature
 * scaling, inside CigL (the BatchNorm recompute against the averaging), the ablations and the reliability
 * diagrams side by side. Each block is computed from the sweep's summaries and per-epoch tables alone.
 */
export interface Setting {
  readonly sweep: SweepArtefacts;
  readonly groups: readonly ComparisonGroup[];
  /** ECE bin count of the tables and verdicts (15 when present). */
  readonly bins: string;
  /** Every bin count the runs report (the verdicts are repeated with each). */
  readonly allBins: readonly string[];
  /** Links are relative to the report's folder. */
  readonly link: (file: string) => string;
}

/** The stages the report compares (the vocabulary of sinks/summary.ts; older summaries are read with it). */
export const STAGES = {
  scaled: STAGE_NAMES.temperatureScaled,
  before: STAGE_NAMES.live,
  live: STAGE_NAMES.liveRecomputedBatchNorm,
  averaged: STAGE_NAMES.averaged,
} as const;

function summariesOf(setting: Setting, g: ComparisonGroup): RunSummary[] {
  return g.runNames.map((name) => setting.sweep.summaries.find((s) => s.runName === name)!);
}

function scaledStage(g: ComparisonGroup): StageStats | undefined {
  return g.stages.find((s) => s.calibrated);
}

function find(groups: readonly ComparisonGroup[], label: string, density: number): ComparisonGroup | undefined {
  return groups.find((g) => g.label === label && Math.abs(g.density - density) < 1e-9);
}

function statsOf(values: readonly (number | undefined)[]): MetricStats | undefined {
  const present = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return present.length > 0 ? meanStd(present) : undefined;
}

/** Mean ± sd of the last epoch's training accuracy over the group's runs that have per-epoch tables. */
export function finalTrainAccuracy(setting: Setting, g: ComparisonGroup): MetricStats | undefined {
  return statsOf(g.runNames.map((n) => setting.sweep.epochs.get(n)?.epochs.at(-1)?.trainAccuracy));
}

/** Every group's headline stage and, in columns of their own, the same model after temperature scaling; then the note that explains the columns. */
export function resultsTable(setting: Setting): string[] {
  const { groups, bins } = setting;
  const train = groups.map((g) => finalTrainAccuracy(setting, g));
  const hasTrain = train.some((t) => t !== undefined);
  const headers = [
    'Method',
    'Sparsity',
    'Seeds',
    ...(hasTrain ? ['Train acc. (%)'] : []),
    'Accuracy (%)',
    `ECE (${bins} bins)`,
    'NLL',
    `ECE after TS`,
    'NLL after TS',
    'Temperature',
  ];
  const rows = groups.map((g, i) => {
    const scaled = scaledStage(g);
    const temperature = statsOf(summariesOf(setting, g).map((s) => s.results.find((r) => r.temperature !== undefined)?.temperature));
    return [
      g.label,
      formatSparsity(g.density),
      String(g.headline.accuracy.n),
      ...(hasTrain ? [formatStats(train[i], 2, 100) || '–'] : []),
      formatStats(g.headline.accuracy, 2, 100),
      formatStats(g.headline.ece[bins], 4) || '–',
      formatStats(g.headline.nll, 4) || '–',
      formatStats(scaled?.ece[bins], 4) || '–',
      formatStats(scaled?.nll, 4) || '–',
      formatStats(temperature, 3) || '–',
    ];
  });
  const note =
    'Mean ± sample standard deviation over seeds. Accuracy, ECE and NLL: the last model before temperature scaling (CigL: after weight and mask averaging), as the paper compares. ' +
    '"after TS": the same model with one temperature fitted on the validation split by minimising NLL (it leaves the accuracy unchanged); "Temperature": the fitted T (above 1: the model was over-confident).' +
    (hasTrain ? ' "Train acc.": the last epoch\'s running training accuracy.' : '');
  return [formatTable(headers, rows, 'markdown', headers.map((h) => (h === 'Method' ? 'l' : 'r'))), note, ''];
}

/** The claims' verdicts at `densities` (and dense), with the headline bin count first and the others after. */
export function claimsBlock(setting: Setting, densities?: readonly number[]): { lines: string[]; primary: ClaimVerdict[] } {
  const groups = densities ? setting.groups.filter((g) => g.density === 1 || densities.some((d) => Math.abs(d - g.density) < 1e-9)) : setting.groups;
  const verdicts = setting.allBins.flatMap((b) => checkClaims(groups, b));
  const primary = verdicts.filter((v) => v.bins === setting.bins);
  const lines: string[] = [];
  for (const v of primary) lines.push(`- ${v.statement}`, ...v.checks.map((c) => `  - ${c.holds ? 'holds' : 'does not hold'} ${c.detail}`));
  for (const v of verdicts.filter((x) => x.bins !== setting.bins)) {
    const same = primary.find((p) => p.claim === v.claim)?.verdict === v.verdict;
    lines.push(`- With ${v.bins} bins: claim (${v.claim}) ${same ? `gives the same verdict (${v.verdict})` : `**${v.verdict}** (differs from the ${setting.bins}-bin verdict)`}.`);
  }
  return { lines: [...lines, ''], primary };
}

export interface TemperatureComparison {
  readonly density: number;
  /** CigL before scaling has lower mean ECE than RigL after scaling. */
  readonly beatsScaledRigl?: boolean;
  readonly beatsScaledDense?: boolean;
  readonly statement: string;
}

/** CigL (no post-hoc calibration, and with it) against RigL and dense after temperature scaling, per sparsity. */
export function temperatureComparisons(setting: Setting): TemperatureComparison[] {
  const { groups, bins } = setting;
  const dense = find(groups, 'dense', 1);
  const denseScaled = dense && scaledStage(dense)?.ece[bins];
  return groups
    .filter((g) => g.label === 'cigl' && g.density < 1)
    .flatMap((cigl) => {
      const c = cigl.headline.ece[bins];
      if (!c) return [];
      const rigl = find(groups, 'rigl', cigl.density);
      const riglScaled = rigl && scaledStage(rigl)?.ece[bins];
      const ciglScaled = scaledStage(cigl)?.ece[bins];
      const versus = (other: MetricStats, what: string) => `${what} ${formatStats(other, 4)} (${describeDifference(c, other, 4)}: CigL **${c.mean < other.mean ? 'lower' : 'not lower'}**)`;
      const parts = [
        riglScaled ? versus(riglScaled, 'temperature-scaled RigL') : 'no temperature-scaled RigL at this sparsity',
        denseScaled ? versus(denseScaled, 'temperature-scaled dense') : 'no temperature-scaled dense model',
      ];
      const after = ciglScaled
        ? ` With temperature scaling CigL reaches ${formatStats(ciglScaled, 4)}${riglScaled ? ` (against scaled RigL: ${describeDifference(ciglScaled, riglScaled, 4)})` : ''}.`
        : '';
      return [
        {
          density: cigl.density,
          ...(riglScaled ? { beatsScaledRigl: c.mean < riglScaled.mean } : {}),
          ...(denseScaled ? { beatsScaledDense: c.mean < denseScaled.mean } : {}),
          statement: `At ${formatSparsity(cigl.density)}: CigL without post-hoc calibration has ECE ${formatStats(c, 4)}; against ${parts.join('; against ')}.${after}`,
        },
      ];
    });
}

/** One sentence over all sparsities: where CigL alone beats temperature-scaled RigL and dense. */
export function temperatureSummary(comparisons: readonly TemperatureComparison[]): string {
  if (comparisons.length === 0) return 'CigL against temperature scaling: cannot be compared (no CigL run with a temperature-scaled RigL or dense run beside it).';
  const list = (pick: (c: TemperatureComparison) => boolean | undefined, value: boolean) =>
    comparisons.filter((c) => pick(c) === value).map((c) => formatSparsity(c.density));
  const say = (what: string, pick: (c: TemperatureComparison) => boolean | undefined) => {
    const yes = list(pick, true);
    const no = list(pick, false);
    if (yes.length + no.length === 0) return `against ${what}: no comparison`;
    if (yes.length === 0) return `not lower than ${what} at any sparsity compared (${no.join(', ')})`;
    if (no.length === 0) return `lower than ${what} at every sparsity compared (${yes.join(', ')})`;
    return `lower than ${what} at ${yes.join(', ')}, not at ${no.join(', ')}`;
  };
  return `CigL's ECE before any post-hoc calibration is ${say('temperature-scaled RigL', (c) => c.beatsScaledRigl)}; ${say('the temperature-scaled dense model', (c) => c.beatsScaledDense)}.`;
}

/** Mean ± sd over the group's runs of (stage `to` − stage `from`) for one metric: a paired difference. */
function pairedChange(runs: readonly RunSummary[], from: string, to: string, value: (r: StageResult) => number | undefined): MetricStats | undefined {
  return statsOf(
    runs.map((s) => {
      const [a, b] = [s.results.find((r) => r.stage === from), s.results.find((r) => r.stage === to)];
      const [va, vb] = [a && value(a), b && value(b)];
      return va === undefined || vb === undefined ? undefined : vb - va;
    }),
  );
}

function describeChange(change: MetricStats | undefined, digits: number, scale = 1, unit = ''): string {
  if (!change) return 'not measured';
  const text = `${change.mean >= 0 ? '+' : '−'}${Math.abs(change.mean * scale).toFixed(digits)}`;
  if (change.std === undefined) return `${text}${unit} (one seed)`;
  const twoSe = (2 * change.std) / Math.sqrt(change.n);
  return `${text} ± ${(change.std * scale).toFixed(digits)}${unit} over ${change.n} seeds (${Math.abs(change.mean) > twoSe ? 'more' : 'less'} than two standard errors)`;
}

/**
 * Inside each averaged CigL group: the stages before temperature scaling, what the BatchNorm recompute
 * alone does (the live weights with recomputed statistics against the live model) and what the averaging
 * adds (the average against the live weights with recomputed statistics), as paired differences over
 * seeds; and the averaging record (snapshots, relative change).
 */
export function insideCiglBlock(setting: Setting): string[] {
  const { bins } = setting;
  const averaged = setting.groups.filter((g) => g.stages.some((s) => s.stage === STAGES.averaged) && g.stages.some((s) => s.stage === STAGES.before));
  if (averaged.length === 0) return [];
  const out: string[] = [];
  out.push(formatComparisonTable(averaged.flatMap((g) => g.stages.filter((s) => !s.calibrated).map((s) => ({ group: g, stage: s }))), true));
  for (const g of averaged) {
    const runs = summariesOf(setting, g);
    const hasLive = g.stages.some((s) => s.stage === STAGES.live);
    const change = (from: string, to: string) =>
      `ECE ${describeChange(pairedChange(runs, from, to, (r) => r.ece[bins]), 4)}, accuracy ${describeChange(pairedChange(runs, from, to, (r) => r.accuracy), 2, 100, ' points')}`;
    out.push(`- ${g.label} at ${formatSparsity(g.density)}:`);
    if (hasLive) {
      out.push(`  - the BatchNorm recompute alone ("${STAGES.live}" − "${STAGES.before}"): ${change(STAGES.before, STAGES.live)};`);
      out.push(`  - the averaging ("${STAGES.averaged}" − "${STAGES.live}"): ${change(STAGES.live, STAGES.averaged)};`);
    }
    out.push(`  - both together ("${STAGES.averaged}" − "${STAGES.before}"): ${change(STAGES.before, STAGES.averaged)}.`);
    const records = runs.flatMap((s) => (s.averaging ? [s.averaging] : []));
    if (records.length > 0) {
      const snapshots = [...new Set(records.map((a) => a.snapshots))].join('/');
      const steps = [...new Set(records.map((a) => `${a.firstStep}–${a.lastStep}`))].join(', ');
      out.push(
        `  - averaging record (${records.length} of ${runs.length} runs): ${snapshots} snapshots, steps ${steps}; ` +
          `relative change of the average from the live weights ‖W̄ − W‖ / ‖W‖ = ${formatStats(meanStd(records.map((a) => a.relativeChange)), 4)}.`,
      );
    }
  }
  return [...out, ''];
}

export const INSIDE_CIGL_NOTE =
  `"${STAGES.before}": the live weights with the running BatchNorm statistics the trainer kept; "${STAGES.live}": the same weights with statistics recomputed by one pass over the training data, ` +
  `a diagnostic that separates the recompute's effect from the averaging's; "${STAGES.averaged}": the snapshot average with recomputed statistics (CigL's model). ` +
  'Changes are paired differences over seeds (mean ± sd), in ECE and in accuracy points.';

/** Each ablation run group beside full CigL at the same sparsity. */
function ablationRows(setting: Setting): { g: ComparisonGroup; full: ComparisonGroup; what: string }[] {
  const ablations: [string, string][] = [
    ['cigl-no-random-mask', 'without the random mask (p = 0)'],
    ['cigl-no-averaging', 'without weight and mask averaging'],
  ];
  return ablations.flatMap(([label, what]) =>
    setting.groups
      .filter((g) => g.label === label)
      .flatMap((g) => {
        const full = find(setting.groups, 'cigl', g.density);
        return full ? [{ g, full, what }] : [];
      }),
  );
}

/** A sentence per ablation: its ECE and accuracy against full CigL's, and whether the differences exceed two standard errors. */
export function ablationSentences(setting: Setting): string[] {
  const { bins } = setting;
  return ablationRows(setting).flatMap(({ g, full, what }) => {
    const a = g.headline.ece[bins];
    const c = full.headline.ece[bins];
    if (!a || !c) return [];
    return [
      `CigL ${what} at ${formatSparsity(g.density)}: ECE ${formatStats(a, 4)} against ${formatStats(c, 4)} for full CigL ` +
        `(${a.mean > c.mean ? 'higher' : a.mean < c.mean ? 'lower' : 'equal'}; ${describeDifference(a, c, 4)}), ` +
        `accuracy ${describeDifference(g.headline.accuracy, full.headline.accuracy, 2, 100, ' points')}.`,
    ];
  });
}

/** Ablation rows beside full CigL at the same sparsity, and a sentence each. */
export function ablationBlock(setting: Setting): string[] {
  const rows = ablationRows(setting);
  if (rows.length === 0) return [];
  const out = [formatComparisonTable([...new Set(rows.flatMap((r) => [r.full, r.g]))].map((g) => ({ group: g, stage: g.headline })), true)];
  out.push(...ablationSentences(setting).map((sentence) => `- ${sentence}`), '');
  return out;
}

/**
 * Reliability diagrams of dense, RigL and CigL side by side, a row per sparsity: each the first seed's own
 * diagram (the model before temperature scaling; CigL after averaging).
 */
export function reliabilityBlock(setting: Setting, densities: readonly number[]): string[] {
  const { groups } = setting;
  const dense = find(groups, 'dense', 1);
  const rows = densities.filter((d) => find(groups, 'rigl', d) || find(groups, 'cigl', d));
  if (rows.length === 0) return [];
  const cell = (g: ComparisonGroup | undefined) => {
    if (!g) return '–';
    const runName = g.runNames[g.seeds.indexOf(Math.min(...g.seeds))];
    const summary = setting.sweep.summaries.find((s) => s.runName === runName)!;
    const fromOutputs = Object.entries(summary.outputs).find(([label, p]) => /reliab/i.test(label) && p.endsWith('.png'))?.[1];
    const file = path.join(setting.sweep.dir, runName, path.basename(fromOutputs ?? 'reliability.png'));
    const alt = `${g.label}, ${formatSparsity(g.density)} sparse, seed ${summary.seed}`;
    return fs.existsSync(file) ? `<img src="${setting.link(file)}" width="280" alt="${alt}">` : `_no diagram in ${setting.link(path.dirname(file))}_`;
  };
  const table = formatTable(
    ['Sparsity', 'dense', 'RigL', 'CigL'],
    rows.map((d) => [formatSparsity(d), cell(dense), cell(find(groups, 'rigl', d)), cell(find(groups, 'cigl', d))]),
    'markdown',
  );
  return ["Each diagram is its run's own (the first seed's), of the model before temperature scaling (CigL: after averaging), on the reported split.", '', table];
}
