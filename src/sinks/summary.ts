import * as fs from 'node:fs';
import { z } from 'zod';
import { LayerDensitySchema, ModelDensitySchema, type LayerDensity, type ModelDensity } from '../sparse/model-density';
import { writeJsonAtomic } from './atomic-file';

export type { LayerDensity, ModelDensity };

/**
 * `summary.json`: the run's headline numbers and where its outputs are, written at the end of a run
 * (printed by report/summary-table.ts, read back by sweeps, the daemon and the study report).
 *
 * The vocabulary of stages. Every number names the model it was measured on:
 * - `live`: the weights training ended with, with the BatchNorm statistics the trainer kept;
 * - `live, recomputed BN`: the same weights with statistics recomputed by one pass over the training
 *   data (a diagnostic of runs with averaging, separating the recompute's effect from the averaging's);
 * - `after averaging`: the weight & mask average of the snapshots, statistics recomputed (CigL's model);
 * - `after temperature scaling`: the run's model (the last of the above) at the temperature fitted on
 *   the validation split.
 * The headline is the run's model before temperature scaling, as the paper compares methods: the same
 * stage in the terminal, summary.json (`headline`), comparison.md, the sweep plot, the model metadata
 * and the reliability diagram. Temperature-scaled numbers are shown in columns of their own.
 */
export const STAGES = {
  live: 'live',
  liveRecomputedBatchNorm: 'live, recomputed BN',
  averaged: 'after averaging',
  temperatureScaled: 'after temperature scaling',
} as const;

/** A model the finishing stages evaluate (T = 1). */
export type ModelStage = (typeof STAGES)['live' | 'liveRecomputedBatchNorm' | 'averaged'];

/**
 * Stage labels that summaries written before the vocabulary (issue 19) used, and what they are now:
 * the study's artefacts of that time are read with today's names.
 */
const EARLIER_STAGE_NAMES: Readonly<Record<string, string>> = {
  final: STAGES.live,
  'before averaging': STAGES.live,
  'live + recomputed BN': STAGES.liveRecomputedBatchNorm,
};

export const StageResultSchema = z.object({
  /** Which model the numbers are for: one of STAGES (older summaries' names are read as today's). */
  stage: z.string(),
  /** Top-1 accuracy in [0, 1]. */
  accuracy: z.number(),
  /** ECE by equal-width bin count, e.g. { "15": 0.031, "10": 0.029 }. */
  ece: z.record(z.string(), z.number()),
  nll: z.number().optional(),
  /** Brier score (mean squared error of the probability vector). */
  brier: z.number().optional(),
  /** The temperature applied, for the temperature-scaled stage. */
  temperature: z.number().optional(),
  /** For the temperature-scaled stage: the stage of the model that was scaled. */
  scaled: z.string().optional(),
});
export type StageResult = Readonly<z.infer<typeof StageResultSchema>>;

/** What the weight & mask averaging did (runs with averaging only). */
export const AveragingSummarySchema = z.object({
  snapshots: z.number().int(),
  /** The first and last averaged snapshot's training step. */
  firstStep: z.number().int(),
  lastStep: z.number().int(),
  /**
   * ‖W̄ − W‖ / ‖W‖ over every trainable parameter, W the live weights at the end of training: how far the
   * average lies from the model it replaces (near 0 means averaging had nothing to average).
   */
  relativeChange: z.number(),
});
export type AveragingSummary = Readonly<z.infer<typeof AveragingSummarySchema>>;

export const RunSummarySchema = z.object({
  runName: z.string(),
  runDir: z.string(),
  configHash: z.string(),
  method: z.string(),
  model: z.string(),
  /** The configured overall density of the masked layers (sparse.density; 1 for dense). */
  targetDensity: z.number().gt(0).lte(1),
  seed: z.number().int(),
  /** The split the results were measured on (normally "test"). */
  split: z.string(),
  /** The stage of the headline result (the run's model before temperature scaling); see STAGES. */
  headline: z.string().optional(),
  /** One per model stage at T = 1, then `after temperature scaling` when it was fitted. */
  results: z.array(StageResultSchema).min(1),
  /** The masked layers. */
  layers: z.array(LayerDensitySchema),
  /** The final model's density over the masked layers and over all parameters (see sparse/model-density.ts). */
  density: ModelDensitySchema.optional(),
  /** Label → path of each output (metrics, model, reliability diagram, ...). */
  outputs: z.record(z.string(), z.string()),
  /** The compact sparse model file against dense float32. */
  modelSize: z.object({ fileBytes: z.number(), denseBytes: z.number() }).optional(),
  averaging: AveragingSummarySchema.optional(),
  steps: z.number().int().optional(),
  wallTimeMs: z.number().optional(),
  backend: z.string().optional(),
});

/** A run summary as written by this version (and as every reader sees one, older ones upgraded). */
export type RunSummary = Readonly<Omit<z.infer<typeof RunSummarySchema>, 'results' | 'layers'>> & {
  readonly results: readonly StageResult[];
  readonly layers: readonly LayerDensity[];
};

/** The result the paper's comparisons use: the last stage without a temperature. */
export function headlineResult(summary: Pick<RunSummary, 'results'> & { readonly headline?: string }): StageResult | undefined {
  const named = summary.headline === undefined ? undefined : summary.results.find((r) => r.stage === summary.headline && r.temperature === undefined);
  return named ?? summary.results.filter((r) => r.temperature === undefined).at(-1) ?? summary.results.at(-1);
}

/** The temperature-scaled result of a run, if it has one. */
export function temperatureScaledResult(summary: Pick<RunSummary, 'results'>): StageResult | undefined {
  return summary.results.find((r) => r.temperature !== undefined);
}

/**
 * Checks a parsed summary.json (of this or an earlier version) and gives it in today's form: stage names
 * of the vocabulary, `headline` named, the scaled model named. `source` names the file in errors.
 */
export function parseRunSummary(value: unknown, source: string): RunSummary {
  const parsed = RunSummarySchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue.path.length === 0 ? '(top level)' : issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
    const got = issue.path.reduce<unknown>((node, key) => (node !== null && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[key] : undefined), value);
    throw new Error(`${source}: ${field} ${issue.message.replace(/^Invalid input: /, '').toLowerCase()}, got ${JSON.stringify(got) ?? 'nothing'}`);
  }
  const s = parsed.data;
  const results = s.results.map((r) => ({ ...r, stage: EARLIER_STAGE_NAMES[r.stage] ?? r.stage }));
  const headline = headlineResult({ results, headline: s.headline && (EARLIER_STAGE_NAMES[s.headline] ?? s.headline) });
  const scaled = results.map((r) => (r.temperature !== undefined && r.scaled === undefined ? { ...r, scaled: headline?.stage } : r));
  return { ...s, results: scaled, headline: headline!.stage };
}

/** A run's summary.json, checked, in today's form; errors name the file and field. */
export function readRunSummary(file: string): RunSummary {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read run summary: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message})`);
  }
  return parseRunSummary(value, file);
}

export function writeSummary(file: string, summary: RunSummary): void {
  writeJsonAtomic(file, summary);
}
