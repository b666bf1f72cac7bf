/**
 * The mask that keeps exactly k entries of a layer: the k largest |w|. Ties, deterministic and in this
 * order: larger |w| first; then entries active in `preferred` (the latest snapshot's mask, so that among
 * equal magnitudes, zeros included, the most recent topology survives); then the lower flat index.
 */
export function keepTopMagnitudes(values: Float32Array, k: number, preferred?: Uint8Array): Uint8Array {
  const n = values.length;
  if (!(Number.isInteger(k) && k >= 0 && k <= n)) throw new Error(`keepTopMagnitudes: k must be an integer in [0, ${n}], got ${k}`);
  if (preferred && preferred.length !== n) {
    throw new Error(`keepTopMagnitudes: preferred mask has ${preferred.length} entries, values ${n}`);
  }
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => {
    const byMagnitude = Math.abs(values[b]) - Math.abs(values[a]);
    if (byMagnitude !== 0) return byMagnitude;
    const byPreference = preferred ? preferred[b] - preferred[a] : 0;
    return byPreference !== 0 ? byPreference : a - b;
  });
  const keep = new Uint8Array(n);
  for (let r = 0; r < k; r++) keep[order[r]] = 1;
  return keep;
}
