import type { Mask } from './masks';

/**
 * One layer's mask update, shared by every dynamic method (google rigl's `_get_update_op`): drop the
 * k = ⌊f · active⌋ active weights of smallest |w|, then grow the k highest-scoring positions among all
 * positions that are inactive after the drop. The method only supplies the grow score.
 *
 * Just-pruned positions are grow candidates, as in both references: google rigl ranks every position
 * outside the kept set (`score_grow_lifted` lowers only the kept ones) and rigl-reproducibility, the base
 * of the CigL code, grows where `new_mask == 0` after pruning. A position dropped and regrown in the same
 * update never left the mask: the result lists it as `reselected`, not as pruned or grown, so that the caller
 * keeps its value and momentum (the reference zeroes only positions that were inactive before the
 * update). `pruned` and `grown` are the mask's net change and always have equal length.
 *
 * Ties are broken deterministically: among equal |w| the lower index is dropped first; among equal
 * scores the lower index is grown first.
 */
export interface PruneGrowResult {
  /** Positions switched off (dropped and not regrown), ascending. */
  readonly pruned: Int32Array;
  /** Positions switched on that were inactive before the update, ascending. */
  readonly grown: Int32Array;
  /** Positions the drop chose and the growth chose again (active before and after), ascending. */
  readonly reselected: Int32Array;
}

export function pruneAndGrow(mask: Mask, weights: Float32Array, growScore: Float32Array, dropFraction: number, layer: string): PruneGrowResult {
  if (weights.length !== mask.length || growScore.length !== mask.length) {
    throw new Error(`mask update of ${layer}: mask (${mask.length}), weights (${weights.length}) and grow scores (${growScore.length}) differ in size`);
  }
  const active: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) active.push(i);
  const k = Math.floor(dropFraction * active.length);
  // A fully dense layer (ERK overflow) can only regrow what it drops: a no-op, skipped.
  if (k === 0 || active.length === mask.length) return { pruned: new Int32Array(0), grown: new Int32Array(0), reselected: new Int32Array(0) };

  const magnitude = new Float32Array(active.length);
  active.forEach((pos, j) => {
    const w = weights[pos];
    if (Number.isNaN(w)) throw new Error(`mask update of ${layer}: weight ${pos} is NaN (training diverged)`);
    magnitude[j] = Math.abs(w);
  });
  const dropped = selectExtreme(Int32Array.from(active), magnitude, k, 'smallest');
  for (const pos of dropped) mask[pos] = 0;

  const candidates: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] === 0) candidates.push(i);
  const scores = new Float32Array(candidates.length);
  candidates.forEach((pos, j) => {
    const s = growScore[pos];
    if (Number.isNaN(s)) throw new Error(`mask update of ${layer}: grow score at ${pos} is NaN`);
    scores[j] = s;
  });
  const chosen = selectExtreme(Int32Array.from(candidates), scores, k, 'largest');
  for (const pos of chosen) mask[pos] = 1;
  const wasDropped = new Set(dropped);
  const reselected = chosen.filter((pos) => wasDropped.has(pos));
  const kept = new Set(reselected);
  return {
    pruned: dropped.filter((pos) => !kept.has(pos)),
    grown: chosen.filter((pos) => !wasDropped.has(pos)),
    reselected,
  };
}

/**
 * The k positions with the smallest (or largest) keys, ties to the lower position; `positions` ascend.
 * Uses the native numeric sort of a key copy to find the threshold, then one ordered pass.
 */
function selectExtreme(positions: Int32Array, keys: Float32Array, k: number, which: 'smallest' | 'largest'): Int32Array {
  const sorted = Float32Array.from(keys).sort();
  const threshold = which === 'smallest' ? sorted[k - 1] : sorted[sorted.length - k];
  const beyond = (v: number): boolean => (which === 'smallest' ? v < threshold : v > threshold);
  let strict = 0;
  for (let j = 0; j < keys.length; j++) if (beyond(keys[j])) strict++;
  let ties = k - strict;
  const out = new Int32Array(k);
  let n = 0;
  for (let j = 0; j < keys.length; j++) {
    if (beyond(keys[j])) out[n++] = positions[j];
    else if (keys[j] === threshold && ties > 0) {
      out[n++] = positions[j];
      ties--;
    }
  }
  return out;
}
