import { z } from 'zod';
import { CONFIG_FIELDS } from '../config/config';
import { MODEL_NAMES } from '../models/zoo';
import { LayerDensitySchema, ModelDensitySchema } from '../sparse/model-density';

/**
 * What a run stores with its saved model (model.json's `userDefinedMetadata`, and the safetensors
 * `__metadata__`): how to use the model (architecture, input shape and normalisation, class names, the
 * fitted temperature) and what it is (method, config hash, its headline numbers and densities).
 *
 * Loading needs only the first group; everything else is optional, so that models of earlier versions
 * load. The numbers (`accuracy`, `ece`) are the model's at T = 1 on `evaluatedOn`, and `stage` says which
 * model that is (the headline of summary.ts: `after averaging` for CigL, `live` otherwise); what the
 * temperature does to them is under `temperatureScaled`.
 */
export const ModelMetadataSchema = z.object({
  /** The zoo architecture: mlp, cnn, resnet20, wrn-16-4. */
  model: z.enum(MODEL_NAMES),
  /** [height, width, channels] of the input images. */
  inputShape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
  /** Class names in label order (one logit each). */
  classNames: z.array(z.string()).min(2),
  /** Input normalisation, per channel: (pixel / 255 − mean) / std. */
  normalisation: z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) }),
  /** Calibrated probabilities are softmax(logits / temperature); absent: 1. */
  temperature: z.number().positive().optional(),

  generatedBy: z.string().optional(),
  method: z.string().optional(),
  configHash: z.string().optional(),
  seed: z.number().int().optional(),
  data: z.object({ format: CONFIG_FIELDS.data.format.schema, path: z.string(), validationFraction: z.number(), trainImages: z.number().int().positive().optional() }).optional(),
  /** Which model the numbers are for (see STAGES in summary.ts); absent in models of earlier versions (then: the run's headline). */
  stage: z.string().optional(),
  /** Top-1 accuracy at T = 1 on `evaluatedOn`. */
  accuracy: z.number().optional(),
  /** ECE at T = 1 by bin count. */
  ece: z.record(z.string(), z.number()).optional(),
  /** The same model at the stored temperature. */
  temperatureScaled: z.object({ ece: z.record(z.string(), z.number()), nll: z.number() }).optional(),
  evaluatedOn: z.string().optional(),
  layers: z.array(LayerDensitySchema.extend({ sparsity: z.number().optional() })).optional(),
  density: ModelDensitySchema.optional(),
});

export type ModelMetadata = z.infer<typeof ModelMetadataSchema>;
