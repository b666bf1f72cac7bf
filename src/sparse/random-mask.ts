import type { Rng } from '../util/rng';
import type { Mask } from './masks';

/**
 * CigL's random weight mask Z ~ Bernoulli(1 − p), drawn for the active weights of M only, returned as the
 * multiplier M ⊙ Z / (1 − p) (the dropout-style rescale keeps E[W_eff] = M ⊙ W). With p = 0 it is M.
 * One uniform 32-bit draw per active weight, in position order, so a given stream gives the same Z.
 */
export function randomWeightMultiplier(mask: Mask, rate: number, rng: Rng): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new Error(`random weight mask rate must be in [0, 1), got ${rate}`);
  const out = new Float32Array(mask.length);
  const scale = 1 / (1 - rate);
  if (rate === 0) {
    for (let i = 0; i < mask.length; i++) out[i] = mask[i];
    return out;
  }
  // keep when u < (1 − p)·2³²: P(keep) = 1 − p up to 2⁻³².
  const keepBelow = (1 - rate) * 4294967296;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] === 1 && rng.nextU32() < keepBelow) out[i] = scale;
  }
  return out;
}
