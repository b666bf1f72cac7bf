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

export interface TrainerStateJson {
  readonly format: 'cigl-trainer-state';
  readonly version: 1;
  readonly model: string;
  readonly method: string;
  readonly seed: number;
  readonly stepsPerEpoch: number;
  readonly totalSteps: number;
  /** Steps completed so far (the next step's index). */
  readonly step: number;
  /** Running sums of the current epoch, for its epochEnd event. */
  readonly epochLossSum: number;
  readonly epochCorrect: number;
  readonly epochSeen: number;
  /** Exact active count of every masked layer. */
  readonly layers: readonly { readonly name: string; readonly active: number }[];
}

export const TRAINER_STATE_FORMAT = 'cigl-trainer-state';
