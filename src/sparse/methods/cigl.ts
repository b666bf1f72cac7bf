import type { SparseMethod } from '../method';
import { riglMethod } from './rigl';

/** The rate the released CigL code always ran with (its command-line override was ignored). */
export const CIGL_DEFAULT_RANDOM_MASK_RATE = 0.01;

/**
 * CigL (Lei et al. 2023): RigL's mask M plus a random weight mask Z ~ Bernoulli(1 − p) drawn every step
 * for the active weights, with effective weight M ⊙ Z ⊙ W / (1 − p).
 */
export function ciglMethod(randomMaskRate = CIGL_DEFAULT_RANDOM_MASK_RATE): SparseMethod {
  if (!(randomMaskRate >= 0 && randomMaskRate < 1)) {
    throw new Error(`sparsity.randomMaskRate (CigL p) must be in [0, 1), got ${randomMaskRate}`);
  }
  return { ...riglMethod(), name: 'cigl', randomMaskRate };
}
