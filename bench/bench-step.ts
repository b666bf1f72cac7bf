import * as tf from '@tensorflow/tfjs';
import { bufferPool } from '../src/compute/buffer-pool';
import type { ComputeBackend } from '../src/compute/backend';
import { createModel } from '../src/models/build';
import type { ModelName } from '../src/models/zoo';
import { allocateLayers } from '../src/sparse/density';
import { initialMasks, maskToFloat32 } from '../src/sparse/masks';
import { SgdMomentum } from '../src/train/optimizer';
import { effectiveParams, forwardBackward } from '../src/train/step';
import { Rng } from '../src/util/rng';

export const BENCH_BATCH = 128;

/**
 * The benchmarks' training step, as the peer's: a model at `density` (uniform masks, multiplied into
 * the weights and passed as active patterns, as the trainer does between mask updates), random data,
 * batch 128, SGD lr 0.01 with Nesterov momentum 0.9 and no weight decay, using the training stage's own
 * step functions (src/train/step.ts, src/train/optimizer.ts). `step()` returns the loss (read back as the
 * peer's loss.item()); `dispose()` frees everything.
 */
export function benchStep(compute: ComputeBackend, model: ModelName, density: number): { step(): number; dispose(): void } {
  const m = createModel(model, { seed: 1 });
  const layers = allocateLayers(m.specs, { density, distribution: 'uniform' });
  const masks = new Map([...initialMasks(layers, 1)].map(([name, mask]) => [name, tf.tensor(maskToFloat32(mask), m.params.get(name)!.shape)]));
  const optimizer = new SgdMomentum(m.specs, m.params, { momentum: 0.9, nesterov: true, weightDecay: 0 });
  const rng = Rng.derive(1, 'bench-train', model);
  const x = tf.tensor(Float32Array.from({ length: BENCH_BATCH * m.inputShape.reduce((a, b) => a * b, 1) }, () => rng.nextNormal()), [BENCH_BATCH, ...m.inputShape]);
  const labels = tf.tensor1d(Int32Array.from({ length: BENCH_BATCH }, () => rng.nextInt(m.numClasses)), 'int32');
  return {
    step() {
      const loss = tf.tidy(() => {
        const effective = effectiveParams(m.params, masks);
        const result = forwardBackward(m, compute.ops, effective, x, labels, Object.fromEntries(masks));
        optimizer.step(result.effectiveGrads, 0.01, masks, masks);
        return result.loss;
      });
      const value = loss.dataSync()[0];
      loss.dispose();
      return value;
    },
    dispose() {
      tf.dispose([x, labels, ...masks.values()]);
      optimizer.dispose();
      m.dispose();
      bufferPool.trim();
    },
  };
}
