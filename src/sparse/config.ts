import type { DensityDistribution } from './density';
import type { SparseMethodName } from './method';
import { DEFAULT_MASK_UPDATE_SCHEDULE, type MaskUpdateScheduleConfig } from './schedule';

/** Everything that decides how a run is sparse. Defaults follow the RigL/CigL reference. */
export interface SparsityConfig extends Partial<MaskUpdateScheduleConfig> {
  readonly method: SparseMethodName;
  /** Target density of the masked layers, in (0, 1]; required by every method but 'dense'. */
  readonly density?: number;
  /** Default 'erk'. */
  readonly distribution?: DensityDistribution;
  /** Leave the first maskable layer dense (default false). */
  readonly keepFirstDense?: boolean;
  /** Mask the classifier (the last dense layer) too (default false, as the PyTorch peer). */
  readonly maskClassifier?: boolean;
  /** CigL's p (default 0.01, the released code's value). */
  readonly randomMaskRate?: number;
}

export function scheduleConfigOf(config: SparsityConfig): MaskUpdateScheduleConfig {
  return {
    updateEvery: config.updateEvery ?? DEFAULT_MASK_UPDATE_SCHEDULE.updateEvery,
    dropFraction: config.dropFraction ?? DEFAULT_MASK_UPDATE_SCHEDULE.dropFraction,
    endFraction: config.endFraction ?? DEFAULT_MASK_UPDATE_SCHEDULE.endFraction,
  };
}
