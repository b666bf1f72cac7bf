import type { SparseMethod } from '../method';

/** The dense baseline: no masks, no updates, no random mask. */
export function denseMethod(): SparseMethod {
  return {
    name: 'dense',
    sparse: false,
    updatesMasks: false,
    randomMaskRate: 0,
    growScore(ctx) {
      throw new Error(`the dense method never grows weights (asked for layer ${ctx.layer})`);
    },
  };
}
