import type { SparseMethod } from '../method';
import { staticMethod } from './static';

/** SET (Mocanu et al. 2018): drop the smallest |w|, grow at random positions. */
export function setMethod(): SparseMethod {
  return {
    ...staticMethod(),
    name: 'set',
    updatesMasks: true,
    growScore({ weights, rng }) {
      const scores = new Float32Array(weights.length);
      for (let i = 0; i < scores.length; i++) scores[i] = rng.nextFloat();
      return scores;
    },
  };
}
