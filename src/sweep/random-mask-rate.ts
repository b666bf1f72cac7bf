import type { RunSummary } from '../sinks/summary';
import type { SweepArtefacts } from './artefacts';
import { headlineResult, meanStd, type MetricStats } from './comparison';

/**
 * CigL's random-mask rate p, chosen from a sweep over it (measured on the validation split): among the
 * rates whose mean accuracy is within `tolerance` (0.005, half a point) of the best rate's, the one with
 * the lowest mean ECE (headline stage, `bins` bins).
 */
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
