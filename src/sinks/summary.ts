import type { LayerDensity, ModelDensity } from '../sparse/model-density';
import { writeJsonAtomic } from './atomic-file';

export type { LayerDensity, ModelDensity };

/**
 * `summary.json`: the run's headline numbers and where its outputs are, written at the end of a run
 * (and printed as a table by cli/summary-table.ts).
 */
export interface StageResult {
  /** Which model the numbers are for, e.g. "before averaging", "after averaging", "after temperature scaling". */
  readonly stage: string;
  /** Top-1 accuracy in [0, 1]. */
  readonly accuracy: number;
  /** ECE by equal-width bin count, e.g. { "15": 0.031, "10": 0.029 }. */
  readonly ece: Readonly<Record<string, number>>;
  readonly nll?: number;
  /** Brier score (mean squared error of the probability vector). */
  readonly brier?: number;
  /** The temperature applied, for a temperature-scaled stage. */
  readonly temperature?: number;
}

/** What the weight & mask averaging did (runs with averaging only). */
export interface AveragingSummary {
  readonly snapshots: number;
  /** The first and last averaged snapshot's training step. */
  readonly firstStep: number;
  readonly lastStep: number;
  /**
   * ‖W̄ − W‖ / ‖W‖ over every trainable parameter, W the live weights at the end of training: how far the
   * average lies from the model it replaces (near 0 means averaging had nothing to average).
   */
  readonly relativeChange: number;
}

export interface RunSummary {
  readonly runName: string;
  readonly runDir: string;
  readonly configHash: string;
  readonly method: string;
  readonly model: string;
  /** The configured overall density of the masked layers (sparse.density; 1 for dense). */
  readonly targetDensity: number;
  readonly seed: number;
  /** The split the results were measured on (normally "test"). */
  readonly split: string;
  readonly results: readonly StageResult[];
  /** The masked layers. */
  readonly layers: readonly LayerDensity[];
  /** The final model's density over the masked layers and over all parameters (see sparse/model-density.ts). */
  readonly density?: ModelDensity;
  /** Label → path of each output (metrics, model, reliability diagram, ...). */
  readonly outputs: Readonly<Record<string, string>>;
  /** The compact sparse model file against dense float32. */
  readonly modelSize?: { readonly fileBytes: number; readonly denseBytes: number };
  readonly averaging?: AveragingSummary;
  readonly steps?: number;
  readonly wallTimeMs?: number;
  readonly backend?: string;
}

export function writeSummary(file: string, summary: RunSummary): void {
  writeJsonAtomic(file, summary);
}
