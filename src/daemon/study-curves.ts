import * as fs from 'node:fs';
import * as path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { z } from 'zod';
import { MASK_STATS_LOG, maskStatsSpec, METRICS_LOG, metricsSpec, readSegmentRows, RELIABILITY_FILE, reliabilitySpec, segmentFiles, type ReliabilityRow } from '../sinks/arrow-log';
import { rowsFromTable } from '../sinks/arrow-table';
import { HttpError } from './http-error';
import { RUN_ID_HINT, RUN_ID_PATTERN } from './run-id';

/**
 * `GET /study/curves?runs=<id>,<id>,...&points=N`: what the compare view draws of each selected run, as
 * compact JSON (parallel arrays, values to 6 significant digits), not the logs themselves:
 *
 * - `metrics`: the curves the page draws (`train/loss`, `val/ece15`, ...) as `[steps, values]`, each
 *   thinned to at most `points` points by averaging consecutive steps (the last step always kept);
 * - `mask`: per mask update and masked layer, the pruned and grown counts and the density;
 * - `reliability`: the headline model's bins at T = 1 and at the fitted temperature, on the test split
 *   (validation when the run had no test split), with the most bins the run measured.
 *
 * A run's curves are computed once per version of its logs (the segments' sizes), so a page polling the
 * live runs of a sweep costs a stat per segment for the finished ones.
 */
export const CURVE_METRICS = ['train/loss', 'train/accuracy', 'val/loss', 'val/accuracy', 'val/ece15', 'test/loss', 'test/accuracy', 'test/ece15'];

export const CurvesQuerySchema = z.object({
  runs: z
    .string()
    .transform((s) => s.split(','))
    .pipe(z.array(z.string().regex(RUN_ID_PATTERN, `each run id must be ${RUN_ID_HINT}`)).min(1).max(200)),
  points: z.coerce.number().int().min(10).max(100_000).default(2000),
});
export type CurvesQuery = z.infer<typeof CurvesQuerySchema>;

/** The query of a request target, checked (400 naming the field otherwise). */
export function parseCurvesQuery(target: string): CurvesQuery {
  const params = new URL(target, 'http://localhost').searchParams;
  const parsed = CurvesQuerySchema.safeParse(Object.fromEntries(params));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = String(issue.path[0] ?? 'query');
    throw new HttpError(400, `invalid query parameter ${field}: ${issue.message}`, [{ field, message: issue.message }]);
  }
  return parsed.data;
}

export interface MaskCurves {
  readonly layers: readonly string[];
  readonly steps: readonly number[];
  /** By layer, then by update (null: the layer had no row at that update). */
  readonly pruned: readonly (readonly (number | null)[])[];
  readonly grown: readonly (readonly (number | null)[])[];
  readonly density: readonly (readonly (number | null)[])[];
}

export interface ReliabilityBins {
  readonly split: string;
  readonly stage: string;
  readonly bins: number;
  /** Per bin: [lower, upper, count, mean confidence | null, accuracy | null]. */
  readonly before: readonly (readonly (number | null)[])[];
  readonly after?: readonly (readonly (number | null)[])[];
}

export interface RunCurves {
  readonly id: string;
  readonly metrics: Readonly<Record<string, readonly [readonly number[], readonly number[]]>>;
  readonly mask: MaskCurves;
  readonly reliability?: ReliabilityBins;
}

/** Runs whose curves are kept computed (a study of a few hundred runs fits). */
const MAX_CACHED_RUNS = 500;
const cache = new Map<string, { readonly stamp: string; readonly curves: Omit<RunCurves, 'id'> }>();

/** A run directory's curves (empty ones for a run that has not logged yet). `headline`: the stage to show reliability for. */
export function runCurves(id: string, dir: string, points: number, headline?: string): RunCurves {
  const files = [...segmentFiles(dir, METRICS_LOG), ...segmentFiles(dir, MASK_STATS_LOG), path.join(dir, RELIABILITY_FILE)];
  const stamp = `${points}|${headline}|${files.map((f) => `${f}:${sizeOf(f)}`).join('|')}`;
  const hit = cache.get(dir);
  if (hit && hit.stamp === stamp) return { id, ...hit.curves };
  const curves = { metrics: metricCurves(dir, points), mask: maskCurves(dir), reliability: reliabilityBins(dir, headline) };
  cache.delete(dir);
  cache.set(dir, { stamp, curves });
  if (cache.size > MAX_CACHED_RUNS) cache.delete(cache.keys().next().value!); // the least recently computed

  return { id, ...curves };
}

function metricCurves(dir: string, points: number): RunCurves['metrics'] {
  const rows = segmentFiles(dir, METRICS_LOG).length === 0 ? [] : readSegmentRows(dir, METRICS_LOG, metricsSpec);
  const byKey = new Map<string, Map<number, number>>();
  for (const r of rows) {
    const key = `${r.phase}/${r.metric}`;
    if (!CURVE_METRICS.includes(key)) continue;
    if (!byKey.has(key)) byKey.set(key, new Map());
    byKey.get(key)!.set(r.step, r.value); // the latest row of a step wins (a resumed run re-logs steps)
  }
  const out: Record<string, [number[], number[]]> = {};
  for (const [key, values] of byKey) {
    const sorted = [...values.entries()].sort((a, b) => a[0] - b[0]);
    out[key] = thinByMean(sorted, points);
  }
  return out;
}

/** At most `max` points: consecutive points averaged in equal runs, each placed at its run's last step. */
export function thinByMean(points: readonly (readonly [number, number])[], max: number): [number[], number[]] {
  const steps: number[] = [];
  const values: number[] = [];
  const per = Math.max(1, Math.ceil(points.length / max));
  for (let i = 0; i < points.length; i += per) {
    const run = points.slice(i, i + per);
    steps.push(run[run.length - 1][0]);
    values.push(round(run.reduce((s, p) => s + p[1], 0) / run.length));
  }
  return [steps, values];
}

function maskCurves(dir: string): MaskCurves {
  const rows = segmentFiles(dir, MASK_STATS_LOG).length === 0 ? [] : readSegmentRows(dir, MASK_STATS_LOG, maskStatsSpec);
  const layers = [...new Set(rows.map((r) => r.layer))];
  const steps = [...new Set(rows.map((r) => r.step))].sort((a, b) => a - b);
  const at = new Map(steps.map((s, i) => [s, i]));
  const grid = () => layers.map(() => steps.map((): number | null => null));
  const pruned = grid();
  const grown = grid();
  const density = grid();
  const layerIndex = new Map(layers.map((l, i) => [l, i]));
  for (const r of rows) {
    const l = layerIndex.get(r.layer)!;
    const s = at.get(r.step)!;
    pruned[l][s] = r.pruned;
    grown[l][s] = r.grown;
    density[l][s] = round(r.density);
  }
  return { layers, steps, pruned, grown, density };
}

function reliabilityBins(dir: string, headline: string | undefined): ReliabilityBins | undefined {
  const file = path.join(dir, RELIABILITY_FILE);
  let rows: ReliabilityRow[];
  try {
    rows = rowsFromTable(reliabilitySpec, tableFromIPC(fs.readFileSync(file)), file);
  } catch {
    return undefined; // not written (yet): the run has not finished
  }
  if (rows.length === 0) return undefined;
  const split = rows.some((r) => r.split === 'test') ? 'test' : rows[0].split;
  const ofSplit = rows.filter((r) => r.split === split);
  const stage = headline !== undefined && ofSplit.some((r) => r.stage === headline) ? headline : ofSplit[ofSplit.length - 1].stage;
  const bins = Math.max(...ofSplit.filter((r) => r.stage === stage).map((r) => r.bins));
  const pick = (calibrated: boolean) =>
    ofSplit
      .filter((r) => r.stage === stage && r.bins === bins && r.calibrated === calibrated)
      .sort((a, b) => a.bin - b.bin)
      .map((r) => [round(r.lower), round(r.upper), r.count, r.confidence === null ? null : round(r.confidence), r.accuracy === null ? null : round(r.accuracy)]);
  const after = pick(true);
  return { split, stage, bins, before: pick(false), ...(after.length > 0 ? { after } : {}) };
}

function round(v: number): number {
  return Number.isFinite(v) ? Number(v.toPrecision(6)) : v;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}
