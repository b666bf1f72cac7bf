import type { Rng } from '../util/rng';

/**
 * The one interface every sparse training method implements (as google rigl's sparse_optimizers.py, each
 * method overrides only what differs): whether it masks at all, whether its mask changes, the rate of the
 * CigL random weight mask, and the grow score. The drop rule (smallest |w| among active weights), the
 * schedule and the bookkeeping are shared (prune-grow.ts, schedule.ts, train/trainer.ts).
 */
export const SPARSE_METHOD_NAMES = ['dense', 'static', 'set', 'rigl', 'cigl'] as const;
export type SparseMethodName = (typeof SPARSE_METHOD_NAMES)[number];

export interface GrowContext {
  readonly layer: string;
  readonly step: number;
  /** Current weights W of the layer (zero where inactive). */
  readonly weights: Float32Array;
  /** ∂L/∂W_eff of this step's batch at every position, active or not: the dense gradient. */
  readonly denseGradient: Float32Array;
  /** A stream for this (seed, step, layer) only; draw from it for random scores. */
  readonly rng: Rng;
}

export interface SparseMethod {
  readonly name: SparseMethodName;
  /** false for the dense baseline: no masks, every weight trains. */
  readonly sparse: boolean;
  /** Whether the mask M changes during training; false keeps the initial random mask (static). */
  readonly updatesMasks: boolean;
  /**
   * Rate p of the random weight mask Z ~ Bernoulli(1 − p) drawn every step for the active weights; the
   * effective weight is M ⊙ Z ⊙ W / (1 − p). 0 means no random mask.
   */
  readonly randomMaskRate: number;
  /** Score of every position of the layer; the highest-scoring inactive positions are grown. */
  growScore(ctx: GrowContext): Float32Array;
}
