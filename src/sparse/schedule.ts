/**
 * When masks are updated and by how much (RigL): every `updateEvery` (ΔT) steps, from step ΔT until
 * T_end = round(endFraction × total steps), drop f(t) = f₀ · ½(1 + cos(π t / T_end)) of each layer's
 * active weights. Step 0 is never an update (the initial random mask has not been trained yet).
 */
export interface MaskUpdateScheduleConfig {
  /** ΔT, steps between mask updates (reference 100). */
  readonly updateEvery: number;
  /** f₀, the drop fraction at step 0 (reference 0.3). */
  readonly dropFraction: number;
  /** T_end as a fraction of all training steps (reference 0.75). */
  readonly endFraction: number;
}

export const DEFAULT_MASK_UPDATE_SCHEDULE: MaskUpdateScheduleConfig = { updateEvery: 100, dropFraction: 0.3, endFraction: 0.75 };

export interface MaskUpdateSchedule extends MaskUpdateScheduleConfig {
  /** T_end in steps. */
  readonly endStep: number;
  isUpdateStep(step: number): boolean;
  dropFractionAt(step: number): number;
}

export function maskUpdateSchedule(config: MaskUpdateScheduleConfig, totalSteps: number): MaskUpdateSchedule {
  const { updateEvery, dropFraction, endFraction } = config;
  if (!(Number.isInteger(updateEvery) && updateEvery >= 1)) throw new Error(`sparsity.updateEvery must be a positive integer, got ${updateEvery}`);
  if (!(dropFraction >= 0 && dropFraction <= 1)) throw new Error(`sparsity.dropFraction must be in [0, 1], got ${dropFraction}`);
  if (!(endFraction >= 0 && endFraction <= 1)) throw new Error(`sparsity.endFraction must be in [0, 1], got ${endFraction}`);
  if (!(Number.isInteger(totalSteps) && totalSteps >= 0)) throw new Error(`total steps must be a non-negative integer, got ${totalSteps}`);
  const endStep = Math.round(endFraction * totalSteps);
  return {
    updateEvery, dropFraction, endFraction, endStep,
    isUpdateStep: (step) => step > 0 && step < endStep && step % updateEvery === 0,
    dropFractionAt: (step) => (endStep <= 0 ? 0 : dropFraction * 0.5 * (1 + Math.cos((Math.PI * Math.min(step, endStep)) / endStep))),
  };
}
