import type { SparseMethod } from '../method';
import { setMethod } from './set';

/** RigL (Evci et al. 2020): drop the smallest |w|, grow where the dense gradient |∂L/∂w| is largest. */
export function riglMethod(): SparseMethod {
  return {
    ...setMethod(),
    name: 'rigl',
    growScore({ denseGradient }) {
      const scores = new Float32Array(denseGradient.length);
      for (let i = 0; i < scores.length; i++) scores[i] = Math.abs(denseGradient[i]);
      return scores;
    },
  };
}
