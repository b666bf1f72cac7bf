import * as tf from '@tensorflow/tfjs';
import { KERNELS, type SgdStepAttrs } from '../compute/native-kernels';
import type { ParamSpec } from '../models/model';

/**
 * SGD with (Nesterov) momentum, exactly PyTorch's torch.optim.SGD with dampening 0:
 *   g ← g + λ·w (L2 weight decay added to the gradient, conv and dense weights only, never biases or
 *   BatchNorm), buf ← μ·buf + g, d = g + μ·buf (Nesterov) or buf, w ← w − lr·d.
 * For masked weights the new w and buf are multiplied by the mask, so inactive weights stay exactly
 * zero and carry no momentum into a later regrowth.
 */
export interface SgdConfig {
  /** μ (reference 0.9). */
  readonly momentum: number;
  /** Reference: true. */
  readonly nesterov: boolean;
  /** λ (reference 1e-4 for ResNet-50, 5e-4 for WRN). */
  readonly weightDecay: number;
}

export const DEFAULT_SGD: SgdConfig = { momentum: 0.9, nesterov: true, weightDecay: 5e-4 };

/** Weight decay applies to conv and dense weights only. */
export const isDecayed = (spec: ParamSpec): boolean => spec.kind === 'conv' || spec.kind === 'dense';

/** A zero-filled variable, without leaving the initial zeros tensor behind. */
function zerosVariable(shape: readonly number[]): tf.Variable {
  const zeros = tf.zeros(shape as number[]);
  const variable = tf.variable(zeros, false);
  zeros.dispose();
  return variable;
}

export class SgdMomentum {
  readonly config: SgdConfig;
  /** Momentum buffers by parameter name, created up front so the tensor count never changes. */
  readonly buffers: ReadonlyMap<string, tf.Variable>;

  constructor(private readonly specs: readonly ParamSpec[], private readonly params: ReadonlyMap<string, tf.Variable>, config: Partial<SgdConfig> = {}) {
    this.config = { ...DEFAULT_SGD, ...config };
    const { momentum, weightDecay } = this.config;
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`optimizer.momentum must be in [0, 1), got ${momentum}`);
    if (!(weightDecay >= 0)) throw new Error(`optimizer.weightDecay must be ≥ 0, got ${weightDecay}`);
    if (this.config.nesterov && momentum === 0) throw new Error('optimizer.nesterov needs optimizer.momentum > 0');
    this.buffers = new Map(specs.map((s) => [s.name, zerosVariable(s.shape)]));
  }

  /**
   * One update. `grads` holds ∂L/∂w for every parameter; `masks` the 0/1 float mask of each masked
   * weight. With `multipliers` (src/train/step.ts: W_eff = W ⊙ m), `grads` are ∂L/∂W_eff instead and
   * ∂L/∂w = grad ⊙ m is formed inside the update (the fused kernel: no extra launch per parameter).
   */
  step(grads: Readonly<Record<string, tf.Tensor>>, lr: number, masks: ReadonlyMap<string, tf.Tensor>, multipliers?: ReadonlyMap<string, tf.Tensor>): void {
    const { momentum, nesterov, weightDecay } = this.config;
    // The native compute path's fused kernel when the active backend has it (same bits, one launch).
    const fused = tf.getKernel(KERNELS.sgdMomentumStep, tf.getBackend()) !== undefined;
    tf.tidy(() => {
      for (const spec of this.specs) {
        const w = this.params.get(spec.name)!;
        const buf = this.buffers.get(spec.name)!;
        let g = grads[spec.name];
        if (!g) throw new Error(`optimizer: no gradient for parameter '${spec.name}'`);
        const mask = masks.get(spec.name);
        const scale = multipliers?.get(spec.name);
        if (fused && [w, buf, g, mask ?? w, scale ?? w].every((t) => t.dtype === 'float32')) {
          const attrs: SgdStepAttrs = { lr, momentum, weightDecay: isDecayed(spec) ? weightDecay : 0, nesterov };
          const inputs: tf.NamedTensorMap = { w, buf, grad: g };
          if (mask) inputs.mask = mask;
          if (scale) inputs.gradScale = scale;
          const [newW, newBuf] = tf.engine().runKernel(KERNELS.sgdMomentumStep, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
          w.assign(newW);
          if (momentum > 0) buf.assign(newBuf);
          continue;
        }
        if (scale) g = tf.mul(g, scale);
        if (weightDecay > 0 && isDecayed(spec)) g = tf.add(g, tf.mul(w, weightDecay));
        let newBuf = momentum > 0 ? tf.add(tf.mul(buf, momentum), g) : g;
        const direction = nesterov ? tf.add(g, tf.mul(newBuf, momentum)) : newBuf;
        let newW = tf.sub(w, tf.mul(direction, lr));
        if (mask) {
          newW = tf.mul(newW, mask);
          newBuf = tf.mul(newBuf, mask);
        }
        w.assign(newW);
        if (momentum > 0) buf.assign(newBuf);
      }
    });
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
  }
}
