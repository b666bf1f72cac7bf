import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon } from '../../src/compute/native-addon';

/** max |a − b| / max |b|: the error relative to the reference's scale (1e-4 is the float32 bar). */
export function relativeError(actual: tf.Tensor, reference: tf.Tensor): number {
  if (!tf.util.arraysEqual(actual.shape, reference.shape)) throw new Error(`shapes differ: [${actual.shape}] vs [${reference.shape}]`);
  const a = actual.dataSync();
  const b = reference.dataSync();
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** The reason native tests are skipped, or false when the addon is built and loads. */
export const nativeUnavailable: string | false = (() => {
  const loaded = loadNativeAddon();
  return 'error' in loaded ? `native addon unavailable: ${loaded.error}` : false;
})();

export const TOLERANCE = 1e-4;
