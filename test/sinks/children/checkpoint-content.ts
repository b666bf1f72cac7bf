import type { Checkpoint } from '../../../src/sinks/checkpoint';
import { Rng } from '../../../src/util/rng';

export interface TestState {
  step: number;
  epoch: number;
  rng: number[];
  note: string;
}

/** A checkpoint whose every value is derived from `step`, ~1 MB, so a reader can check what it loads. */
export function checkpointForStep(step: number, size = 1 << 16): Checkpoint<TestState> {
  const rng = Rng.derive(7, 'checkpoint', step);
  const weights = new Float32Array(size).map(() => rng.nextNormal());
  const masks = new Float32Array(size).map(() => (rng.nextFloat() < 0.1 ? 1 : 0));
  const momentum = new Float32Array(size).map(() => rng.nextNormal() * 1e-3);
  return {
    step,
    arrays: {
      weights: { 'conv1/kernel': { shape: [size / 16, 16], values: weights }, bias: { shape: [3], values: Float32Array.from([step, -0, 1e-30]) } },
      masks: { 'conv1/kernel': { shape: [size / 16, 16], values: masks } },
      optimiser: { 'conv1/kernel': { shape: [size / 16, 16], values: momentum } },
    },
    state: { step, epoch: Math.floor(step / 3), rng: Rng.derive(1, step).getState(), note: `step ${step}` },
  };
}
