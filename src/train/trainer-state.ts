import { z } from 'zod';
import type { NamedArrays } from '../util/named-arrays';

/**
 * Everything a Trainer needs to continue bit-identically: tensors as NamedArrays plus a JSON part.
 * Array names: `param/<name>`, `momentum/<name>`, `bnMean/<layer>`, `bnVariance/<layer>`,
 * `mask/<name>` (0/1) and `lastGrown/<name>` (0/1: the positions grown at the latest mask update, for
 * the next update's `regrownPruned`).
 *
 * There is no running random-generator state to save: every random draw (initial masks, SET grow
 * scores, CigL's Z at every step, snapshot Z_e) comes from its own stream Rng.derive(seed, purpose,
 * step or epoch, layer), so `seed` and `step` reproduce them.
 */
export interface TrainerState {
  readonly arrays: NamedArrays;
  readonly json: TrainerStateJson;
}

export const TrainerStateJsonSchema = z.object({
  format: z.literal('cigl-trainer-state'),
  version: z.literal(1),
  model: z.string(),
  method: z.string(),
  seed: z.number().int(),
  stepsPerEpoch: z.number().int(),
  totalSteps: z.number().int(),
  /** Steps completed so far (the next step's index). */
  step: z.number().int(),
  /** Running sums of the current epoch, for its epochEnd event. */
  epochLossSum: z.number(),
  epochCorrect: z.number(),
  epochSeen: z.number(),
  /** Exact active count of every masked layer. */
  layers: z.array(z.object({ name: z.string(), active: z.number().int() })),
});
export type TrainerStateJson = z.infer<typeof TrainerStateJsonSchema>;

export const TRAINER_STATE_FORMAT = 'cigl-trainer-state';
