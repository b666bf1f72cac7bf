/**
 * Learning rate per optimisation step: linear warm-up from baseLr / W to baseLr over the first W steps,
 * then either step decay (×gamma at each milestone epoch) or cosine decay to `finalLr` at the last step.
 */
export type LrScheduleConfig =
  | { readonly kind: 'step'; readonly baseLr: number; readonly warmupEpochs?: number; readonly milestones: readonly number[]; readonly gamma: number }
  | { readonly kind: 'cosine'; readonly baseLr: number; readonly warmupEpochs?: number; readonly finalLr?: number }
  | { readonly kind: 'constant'; readonly baseLr: number; readonly warmupEpochs?: number };

export type LrSchedule = (step: number) => number;

export function lrSchedule(config: LrScheduleConfig, stepsPerEpoch: number, totalSteps: number): LrSchedule {
  if (!(config.baseLr > 0)) throw new Error(`lr.baseLr must be > 0, got ${config.baseLr}`);
  const warmupEpochs = config.warmupEpochs ?? 0;
  if (!(warmupEpochs >= 0)) throw new Error(`lr.warmupEpochs must be ≥ 0, got ${warmupEpochs}`);
  const warmup = Math.round(warmupEpochs * stepsPerEpoch);
  const base = config.baseLr;
  let decay: (step: number) => number;
  switch (config.kind) {
    case 'constant':
      decay = () => base;
      break;
    case 'step': {
      if (!(config.gamma > 0)) throw new Error(`lr.gamma must be > 0, got ${config.gamma}`);
      const milestoneSteps = config.milestones.map((m, i) => {
        if (!(m >= 0)) throw new Error(`lr.milestones[${i}] must be an epoch ≥ 0, got ${m}`);
        return Math.round(m * stepsPerEpoch);
      });
      decay = (step) => base * config.gamma ** milestoneSteps.filter((m) => step >= m).length;
      break;
    }
    case 'cosine': {
      const final = config.finalLr ?? 0;
      const span = Math.max(1, totalSteps - warmup);
      decay = (step) => final + (base - final) * 0.5 * (1 + Math.cos((Math.PI * Math.min(step - warmup, span)) / span));
      break;
    }
    default:
      throw new Error(`lr.kind must be 'step', 'cosine' or 'constant', got '${String((config as { kind: unknown }).kind)}'`);
  }
  return (step) => (step < warmup ? (base * (step + 1)) / warmup : decay(step));
}
