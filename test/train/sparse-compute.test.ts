import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon, type NativeAddon } from '../../src/compute/native-addon';
import { nativeOps } from '../../src/compute/native-ops';
import { setSparseComputeMode, sparseComputeMode, type SparseComputeMode } from '../../src/compute/sparse-selection';
import { createModel } from '../../src/models/build';
import type { MaskUpdateEvent } from '../../src/train/events';
import { Trainer } from '../../src/train/trainer';
import { nativeUnavailable } from '../compute/compare';
import { syntheticBatches, tinyConfig, useCpuBackend } from '../helpers/tiny-training';

t.before(useCpuBackend);

const skip = nativeUnavailable;
// Two epochs of four steps, mask updates at steps 2 and 4 (ΔT 2, T_end 6). The two paths round
// differently (~1e-7 relative); longer runs let that drift grow until a near-tie in |w| or |∂L/∂w|
// flips one prune or grow decision, which is chaos, not a wrong gradient.
const batches = syntheticBatches({ epochs: 2, stepsPerEpoch: 4, size: 20, numClasses: 10 });

interface RunResult {
  masks: Map<string, Float32Array>;
  losses: number[];
  /** Sparse forward calls per step. */
  sparseCalls: number[];
  updateSteps: number[];
  /** tf.memory().numTensors after every step. */
  tensors: number[];
}

/** A short run of resnet20 on 8×8 images (stride-2 and 1×1 shortcut convolutions included) under a sparse compute mode. */
async function run(method: 'rigl' | 'cigl', mode: SparseComputeMode): Promise<RunResult> {
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  const previous = sparseComputeMode();
  setSparseComputeMode(mode);
  // Sparse forward passes, plain or fused with BatchNorm.
  const forward = addon.sparseConvForward;
  const fusedForward = addon.sparseConvBnForward;
  let calls = 0;
  addon.sparseConvForward = (...args) => {
    calls++;
    forward(...args);
  };
  addon.sparseConvBnForward = (...args) => {
    calls++;
    fusedForward(...args);
  };
  const model = createModel('resnet20', { seed: 5, inputShape: [8, 8, 3] });
  const trainer = new Trainer(tinyConfig(model, {
    ops: nativeOps, epochs: 2,
    // ERK, as in training runs: with uniform 0.1 the 3-channel stem keeps ~3 weights per output channel, and
    // once Z drops them (or they are freshly grown zeros) a channel's output is constant, its BatchNorm
    // variance 0 and its gradients amplified by 1/√ε: rounding noise then decides prune/grow ties. For the same
    // reason CigL runs at p = 0.01 (the rate the reproduction chose): at p = 0.1, Z empties whole channels of
    // these tiny layers often enough that even stock tfjs and the native dense path part ways within 3 steps
    // (parameters 60% apart, measured 2026-11-29), so equality there would test luck, not the kernels.
    sparsity: { method, density: 0.1, distribution: 'erk', updateEvery: 2, randomMaskRate: method === 'cigl' ? 0.01 : undefined },
  }));
  const result: RunResult = { masks: new Map(), losses: [], sparseCalls: [], updateSteps: [], tensors: [] };
  try {
    for (const batch of batches) {
      calls = 0;
      const events = await trainer.process(batch);
      result.sparseCalls.push(calls);
      for (const e of events) {
        if (e.type === 'step') result.losses.push(e.loss);
        if (e.type === 'maskUpdate') result.updateSteps.push((e as MaskUpdateEvent).step);
      }
      result.tensors.push(tf.memory().numTensors);
    }
    for (const layer of trainer.layers) result.masks.set(layer.name, Float32Array.from(trainer.maskOf(layer.name)));
  } finally {
    addon.sparseConvForward = forward;
    addon.sparseConvBnForward = fusedForward;
    setSparseComputeMode(previous);
    trainer.dispose();
    model.dispose();
  }
  return result;
}

for (const method of ['rigl', 'cigl'] as const) {
  t.test(`${method}: the same seed gives the same masks with the sparse kernels forced on and off`, { skip }, async (t) => {
    const on = await run(method, 'on');
    const off = await run(method, 'off');
    t.same(on.updateSteps, [2, 4], 'mask updates happened');
    t.ok(on.masks.size > 0, `${on.masks.size} masked layers`);
    for (const [name, mask] of off.masks) {
      t.ok(Buffer.from(on.masks.get(name)!.buffer).equals(Buffer.from(mask.buffer)), `${name}: identical masks`);
    }
    const lossGap = Math.max(...on.losses.map((l, i) => Math.abs(l - off.losses[i]) / Math.abs(off.losses[i])));
    t.ok(lossGap < 1e-4, `losses agree step by step (largest relative gap ${lossGap.toExponential(2)})`);

    // Sparse kernels ran on every step except mask-update steps, which need the exact dense gradient.
    on.sparseCalls.forEach((calls, step) => {
      if (on.updateSteps.includes(step)) t.equal(calls, 0, `step ${step} (mask update): dense kernels only`);
      else if (calls === 0) t.fail(`step ${step}: no sparse convolution ran`);
    });
    t.ok(off.sparseCalls.every((c) => c === 0), 'mode off: no sparse convolution');

    // Memory discipline: every step leaves the number of tensors unchanged.
    t.ok(on.tensors.every((n) => n === on.tensors[0]), `numTensors constant across steps (${on.tensors[0]})`);
  });
}
