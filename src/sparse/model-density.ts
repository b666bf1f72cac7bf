import { z } from 'zod';

/**
 * How dense a trained model is, told two ways that are easy to confuse, so every report labels both:
 *
 * - over the **masked layers**: what `sparse.density` sets (e.g. 0.1 = "90% sparse");
 * - over **all parameters**: every trainable tensor (conv and dense weights, biases, BatchNorm γ and β),
 *   the masked layers counting their active weights and everything else in full: the fraction of the
 *   model that is non-zero, which is what a sparse file stores. Unmasked layers (the classifier when
 *   `sparse.maskClassifier` is off, the first layer with `model.firstLayerDense`) pull it up.
 */

/** One masked layer: its weights and how many of them are active (unmasked). */
export const LayerDensitySchema = z.object({
  layer: z.string(),
  /** Number of weights in the layer. */
  size: z.number().int().nonnegative(),
  /** Non-zero (unmasked) weights. */
  active: z.number().int().nonnegative(),
});
export type LayerDensity = Readonly<z.infer<typeof LayerDensitySchema>>;

export const DensityCountSchema = z.object({
  weights: z.number().int().nonnegative(),
  active: z.number().int().nonnegative(),
  /** active / weights; 1 when there are no weights. */
  density: z.number(),
});
export type DensityCount = Readonly<z.infer<typeof DensityCountSchema>>;

export const ModelDensitySchema = z.object({ masked: DensityCountSchema, all: DensityCountSchema });
export type ModelDensity = { readonly masked: DensityCount; readonly all: DensityCount };

/** The two densities of a model, from every parameter's size (by name) and the masked layers. */
export function modelDensity(parameterSizes: Readonly<Record<string, number>>, masked: readonly LayerDensity[]): ModelDensity {
  for (const l of masked) {
    if (parameterSizes[l.layer] !== l.size) {
      throw new Error(`modelDensity: masked layer '${l.layer}' has ${l.size} weights, the model's parameter ${parameterSizes[l.layer] ?? '(none)'}`);
    }
  }
  const all = Object.values(parameterSizes).reduce((n, size) => n + size, 0);
  const maskedWeights = masked.reduce((n, l) => n + l.size, 0);
  const maskedActive = masked.reduce((n, l) => n + l.active, 0);
  return { masked: count(maskedWeights, maskedActive), all: count(all, all - maskedWeights + maskedActive) };
}

/** The active count of each masked layer, from its mask (non-zero = active). */
export function layerDensities(masks: Readonly<Record<string, { readonly values: ArrayLike<number> }>>): LayerDensity[] {
  return Object.entries(masks).map(([layer, mask]) => {
    let active = 0;
    for (let i = 0; i < mask.values.length; i++) if (mask.values[i] !== 0) active++;
    return { layer, size: mask.values.length, active };
  });
}

function count(weights: number, active: number): DensityCount {
  return { weights, active, density: weights === 0 ? 1 : active / weights };
}
