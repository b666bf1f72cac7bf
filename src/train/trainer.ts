import * as tf from '@tensorflow/tfjs';
import type { Ops } from '../compute/ops';
import type { Model } from '../models/model';
import type { SparsityConfig } from '../sparse/config';
import { scheduleConfigOf } from '../sparse/config';
import { allocateLayers, type LayerAllocation } from '../sparse/density';
import { applyMask, countActive, initialMasks, type Mask, maskFromArray, maskToFloat32 } from '../sparse/masks';
import type { SparseMethod } from '../sparse/method';
import { createSparseMethod } from '../sparse/methods';
import { pruneAndGrow } from '../sparse/prune-grow';
import { randomWeightMultiplier } from '../sparse/random-mask';
import { maskUpdateSchedule, type MaskUpdateSchedule } from '../sparse/schedule';
import type { Batch } from '../stream/batch';
import { type NamedArray, type NamedArrays, sizeOf } from '../util/named-arrays';
import { Rng } from '../util/rng';
import { TrainingDiverged } from './divergence';
import type { EpochEndEvent, LayerMaskUpdate, MaskUpdateEvent, SnapshotEvent, StepEvent, TrainEvent } from './events';
import { type LrSchedule, type LrScheduleConfig, lrSchedule } from './lr-schedule';
import { type SgdConfig, SgdMomentum } from './optimizer';
import { effectiveParams, forwardBackward } from './step';
import { TRAINER_STATE_FORMAT, type TrainerState, type TrainerStateJson } from './trainer-state';
import type { Validate } from './validation';

export interface TrainerConfig {
  /** The model to train; the trainer updates its variables in place but does not dispose it. */
  readonly model: Model;
  readonly ops: Ops;
  readonly seed: number;
  readonly epochs: number;
  /** Batches per epoch; a batch with index stepsPerEpoch − 1 ends its epoch. */
  readonly stepsPerEpoch: number;
  readonly sparsity: SparsityConfig;
  readonly optimizer?: Partial<SgdConfig>;
  readonly lr: LrScheduleConfig;
  /** First epoch (from 0) that emits snapshots; default ⌊0.8 · epochs⌋ (reference: 200 of 250). */
  readonly averageFromEpoch?: number;
  /**
   * Snapshots per averaged epoch (default 1), evenly spaced, the last at the epoch's end: more snapshots
   * average out more fresh random masks Z_e when a short budget has few averaged epochs.
   */
  readonly snapshotsPerEpoch?: number;
  /** Validation at the end of every epoch; without it epochEnd has no validation fields. */
  readonly validate?: Validate;
}

/**
 * Owns one training run's mutable state (the model's variables, masks M, momentum, position) and turns
 * each Batch into TrainEvents. One step: effective weights W ⊙ M ⊙ Z / (1 − p); loss and gradients with
 * respect to them; on a mask-update step the mask update replaces the optimiser step (as in the
 * reference), otherwise SGD on ∂L/∂W. Deterministic: every random draw comes from
 * Rng.derive(seed, purpose, step|epoch, layer).
 */
export class Trainer {
  readonly model: Model;
  readonly ops: Ops;
  readonly method: SparseMethod;
  /** The masked layers with their exact active counts (empty for the dense method). */
  readonly layers: readonly LayerAllocation[];
  readonly schedule: MaskUpdateSchedule;
  readonly totalSteps: number;
  readonly stepsPerEpoch: number;
  readonly averageFromEpoch: number;
  /** Batch indices within an averaged epoch after which a snapshot is taken, ascending. */
  readonly snapshotIndices: readonly number[];
  readonly seed: number;

  private readonly optimizer: SgdMomentum;
  private readonly lr: LrSchedule;
  private readonly validate?: Validate;
  private readonly masks: Map<string, Mask>;
  /** The masks as 0/1 float tensors, rebuilt after every mask update. */
  private readonly maskTensors = new Map<string, tf.Tensor>();
  private readonly lastGrown = new Map<string, Int32Array>();
  private stepCount = 0;
  private epochLossSum = 0;
  private epochCorrect = 0;
  private epochSeen = 0;
  private disposed = false;

  constructor(config: TrainerConfig) {
    const { model, epochs, stepsPerEpoch, seed } = config;
    if (!(Number.isInteger(epochs) && epochs >= 1)) throw new Error(`epochs must be a positive integer, got ${epochs}`);
    if (!(Number.isInteger(stepsPerEpoch) && stepsPerEpoch >= 1)) throw new Error(`stepsPerEpoch must be a positive integer, got ${stepsPerEpoch}`);
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    this.model = model;
    this.ops = config.ops;
    this.seed = seed;
    this.stepsPerEpoch = stepsPerEpoch;
    this.totalSteps = epochs * stepsPerEpoch;
    this.averageFromEpoch = config.averageFromEpoch ?? Math.floor(0.8 * epochs);
    this.snapshotIndices = snapshotIndices(stepsPerEpoch, config.snapshotsPerEpoch ?? 1);
    this.validate = config.validate;
    this.method = createSparseMethod(config.sparsity.method, { randomMaskRate: config.sparsity.randomMaskRate });
    this.schedule = maskUpdateSchedule(scheduleConfigOf(config.sparsity), this.totalSteps);
    this.lr = lrSchedule(config.lr, stepsPerEpoch, this.totalSteps);
    this.layers = this.method.sparse
      ? allocateLayers(model.specs, { density: config.sparsity.density as number, distribution: config.sparsity.distribution ?? 'erk', keepFirstDense: config.sparsity.keepFirstDense, maskClassifier: config.sparsity.maskClassifier })
      : [];
    this.masks = initialMasks(this.layers, seed);
    this.optimizer = new SgdMomentum(model.specs, model.params, config.optimizer);
    // Inactive weights are exactly zero from the start, so M ⊙ W = W everywhere.
    for (const layer of this.layers) {
      const values = applyMask(this.read(layer.name), this.masks.get(layer.name)!);
      this.write(this.param(layer.name), values);
      this.maskTensors.set(layer.name, tf.tensor(maskToFloat32(this.masks.get(layer.name)!), layer.shape as number[]));
    }
  }

  /** Steps completed (the index of the next step). */
  get step(): number {
    return this.stepCount;
  }

  /** The epoch the next batch belongs to. */
  get epoch(): number {
    return Math.floor(this.stepCount / this.stepsPerEpoch);
  }

  /** A copy of the current mask M of a masked layer. */
  maskOf(name: string): Mask {
    const mask = this.masks.get(name);
    if (!mask) throw new Error(`'${name}' is not a masked layer (masked: ${[...this.masks.keys()].join(', ') || 'none'})`);
    return mask.slice();
  }

  /** One batch: a step (and mask update), a snapshot where one is due, and at the epoch's last batch epochEnd. */
  async process(batch: Batch): Promise<TrainEvent[]> {
    const events: TrainEvent[] = this.trainStep(batch);
    if (batch.epoch >= this.averageFromEpoch && this.snapshotIndices.includes(batch.index)) events.push(this.snapshot());
    if (batch.index === this.stepsPerEpoch - 1) events.push(...(await this.endEpoch()));
    return events;
  }

  /** One optimisation step on `batch`; emits `step` and, on update steps, `maskUpdate`. */
  trainStep(batch: Batch): TrainEvent[] {
    this.checkUsable();
    this.checkBatch(batch);
    const started = performance.now();
    const step = this.stepCount;
    const lr = this.lr(step);
    const updating = this.method.updatesMasks && this.schedule.isUpdateStep(step);
    const multipliers = this.stepMultipliers(step);
    const x = tf.tensor(batch.x, [batch.size, ...this.model.inputShape]);
    const labels = tf.tensor1d(batch.labels, 'int32');
    // Mask-update steps grow by the dense gradient, so only the other steps may skip inactive weights.
    const active = updating ? undefined : Object.fromEntries(multipliers);
    const result = tf.tidy(() => forwardBackward(this.model, this.ops, effectiveParams(this.model.params, multipliers), x, labels, active));
    const events: TrainEvent[] = [];
    try {
      const loss = result.loss.dataSync()[0];
      const correct = result.correct.dataSync()[0];
      this.assertFinite(step, loss, lr, result.effectiveGrads);
      let update: Omit<MaskUpdateEvent, 'wallTimeMs'> | undefined;
      if (updating) {
        update = this.updateMasks(step, result.effectiveGrads);
      } else {
        tf.tidy(() => this.optimizer.step(result.effectiveGrads, lr, this.maskTensors, multipliers));
      }
      this.stepCount++;
      this.epochLossSum += loss * batch.size;
      this.epochCorrect += correct;
      this.epochSeen += batch.size;
      const seconds = (performance.now() - started) / 1000;
      // One time for the step's events, so that a log's rows never go back in time.
      const wallTimeMs = Date.now();
      events.push({
        type: 'step', step, epoch: batch.epoch, loss, accuracy: correct / batch.size, lr,
        imagesPerSecond: seconds > 0 ? batch.size / seconds : 0, wallTimeMs,
      } satisfies StepEvent);
      if (update) events.push({ ...update, wallTimeMs });
    } finally {
      tf.dispose([x, labels, result.loss, result.correct, ...Object.values(result.effectiveGrads)]);
      if (this.method.randomMaskRate > 0) tf.dispose([...multipliers.values()]);
    }
    return events;
  }

  /** End of the epoch just completed: validation and the epoch's training means, as epochEnd. */
  async endEpoch(): Promise<TrainEvent[]> {
    this.checkUsable();
    if (this.stepCount === 0 || this.stepCount % this.stepsPerEpoch !== 0) {
      throw new Error(`endEpoch: trainer is at step ${this.stepCount}, not at an epoch boundary (stepsPerEpoch ${this.stepsPerEpoch})`);
    }
    const epoch = this.stepCount / this.stepsPerEpoch - 1;
    const step = this.stepCount - 1;
    const events: TrainEvent[] = [];
    const validation = this.validate ? await this.validate({ epoch, step, model: this.model, ops: this.ops, params: this.evaluationParams() }) : undefined;
    const end: EpochEndEvent = {
      type: 'epochEnd', step, epoch,
      trainLoss: this.epochLossSum / Math.max(1, this.epochSeen),
      trainAccuracy: this.epochCorrect / Math.max(1, this.epochSeen),
      ...(validation && { validationLoss: validation.loss, validationAccuracy: validation.accuracy, ...(validation.ece !== undefined && { validationEce: validation.ece }) }),
      ...(validation?.test && { testLoss: validation.test.loss, testAccuracy: validation.test.accuracy, ...(validation.test.ece !== undefined && { testEce: validation.test.ece }) }),
      wallTimeMs: Date.now(),
    };
    events.push(end);
    this.epochLossSum = 0;
    this.epochCorrect = 0;
    this.epochSeen = 0;
    return events;
  }

  /** The parameters to evaluate with: M ⊙ W (no Z). These are the live variables; see EvaluationInput. */
  evaluationParams(): Readonly<Record<string, tf.Tensor>> {
    return Object.fromEntries(this.model.params);
  }

  /**
   * Snapshot for averaging of the weights after the last step: masked weights M ⊙ Z_e ⊙ W / (1 − p) with a
   * fresh Z_e from (seed, 'snapshot', step, layer) (Z_e = 1 without a random mask), every other parameter
   * as is.
   */
  private snapshot(): SnapshotEvent {
    const step = this.stepCount - 1;
    const weights: Record<string, NamedArray> = {};
    const masks: Record<string, NamedArray> = {};
    for (const spec of this.model.specs) {
      const values = this.read(spec.name);
      const mask = this.masks.get(spec.name);
      if (mask) {
        const m = randomWeightMultiplier(mask, this.method.randomMaskRate, Rng.derive(this.seed, 'snapshot', step, spec.name));
        for (let i = 0; i < values.length; i++) values[i] *= m[i];
        masks[spec.name] = { shape: spec.shape, values: maskToFloat32(mask) };
      }
      weights[spec.name] = { shape: spec.shape, values };
    }
    return { type: 'snapshot', step, epoch: Math.floor(step / this.stepsPerEpoch), weights, masks, wallTimeMs: Date.now() };
  }

  exportState(): TrainerState {
    this.checkUsable();
    const arrays: Record<string, NamedArray> = {};
    for (const spec of this.model.specs) {
      arrays[`param/${spec.name}`] = { shape: spec.shape, values: this.read(spec.name) };
      arrays[`momentum/${spec.name}`] = { shape: spec.shape, values: this.optimizer.buffers.get(spec.name)!.dataSync().slice() as Float32Array };
    }
    for (const [layer, stats] of this.model.bnStats) {
      arrays[`bnMean/${layer}`] = { shape: stats.mean.shape, values: stats.mean.dataSync().slice() as Float32Array };
      arrays[`bnVariance/${layer}`] = { shape: stats.variance.shape, values: stats.variance.dataSync().slice() as Float32Array };
    }
    for (const layer of this.layers) {
      arrays[`mask/${layer.name}`] = { shape: layer.shape, values: maskToFloat32(this.masks.get(layer.name)!) };
      const grown = new Float32Array(layer.size);
      for (const pos of this.lastGrown.get(layer.name) ?? []) grown[pos] = 1;
      arrays[`lastGrown/${layer.name}`] = { shape: layer.shape, values: grown };
    }
    const json: TrainerStateJson = {
      format: TRAINER_STATE_FORMAT, version: 1, model: this.model.name, method: this.method.name, seed: this.seed,
      stepsPerEpoch: this.stepsPerEpoch, totalSteps: this.totalSteps, step: this.stepCount,
      epochLossSum: this.epochLossSum, epochCorrect: this.epochCorrect, epochSeen: this.epochSeen,
      layers: this.layers.map((l) => ({ name: l.name, active: l.active })),
    };
    return { arrays, json };
  }

  /** Restores a state written by exportState of a trainer with the same model, method, seed and length. */
  importState(state: TrainerState): void {
    this.checkUsable();
    const { json, arrays } = state;
    const expect = (field: string, got: unknown, want: unknown): void => {
      if (got !== want) throw new Error(`trainer state: ${field} is ${JSON.stringify(got)}, this trainer has ${JSON.stringify(want)}`);
    };
    expect('format', json.format, TRAINER_STATE_FORMAT);
    expect('version', json.version, 1);
    expect('model', json.model, this.model.name);
    expect('method', json.method, this.method.name);
    expect('seed', json.seed, this.seed);
    expect('stepsPerEpoch', json.stepsPerEpoch, this.stepsPerEpoch);
    expect('totalSteps', json.totalSteps, this.totalSteps);
    expect('masked layers', json.layers.map((l) => `${l.name}:${l.active}`).join(','), this.layers.map((l) => `${l.name}:${l.active}`).join(','));
    if (!(Number.isInteger(json.step) && json.step >= 0 && json.step <= this.totalSteps)) throw new Error(`trainer state: step ${json.step} is not in [0, ${this.totalSteps}]`);
    const array = (name: string, shape: readonly number[]): Float32Array => {
      const a = arrays[name];
      if (!a) throw new Error(`trainer state: array '${name}' is missing`);
      if (a.shape.join(',') !== shape.join(',') || a.values.length !== sizeOf(shape)) {
        throw new Error(`trainer state: array '${name}' has shape [${a.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      return a.values;
    };
    // Validate everything before changing anything.
    const masks = new Map(this.layers.map((l) => [l.name, maskFromArray({ shape: l.shape, values: array(`mask/${l.name}`, l.shape) }, l.shape, `trainer state mask/${l.name}`)]));
    for (const l of this.layers) {
      const active = countActive(masks.get(l.name)!);
      if (active !== l.active) throw new Error(`trainer state: mask/${l.name} has ${active} active weights, expected ${l.active}`);
    }
    const writes: [tf.Variable, Float32Array][] = [];
    for (const spec of this.model.specs) {
      writes.push([this.param(spec.name), array(`param/${spec.name}`, spec.shape)]);
      writes.push([this.optimizer.buffers.get(spec.name)!, array(`momentum/${spec.name}`, spec.shape)]);
    }
    for (const [layer, stats] of this.model.bnStats) {
      writes.push([stats.mean, array(`bnMean/${layer}`, stats.mean.shape)]);
      writes.push([stats.variance, array(`bnVariance/${layer}`, stats.variance.shape)]);
    }
    const lastGrown = new Map(this.layers.map((l) => [l.name, array(`lastGrown/${l.name}`, l.shape)]));
    for (const [variable, values] of writes) this.write(variable, values);
    for (const l of this.layers) {
      this.masks.set(l.name, masks.get(l.name)!);
      this.maskTensors.get(l.name)!.dispose();
      this.maskTensors.set(l.name, tf.tensor(maskToFloat32(masks.get(l.name)!), l.shape as number[]));
      const grown = lastGrown.get(l.name)!;
      const positions: number[] = [];
      for (let i = 0; i < grown.length; i++) if (grown[i] !== 0) positions.push(i);
      this.lastGrown.set(l.name, Int32Array.from(positions));
    }
    this.stepCount = json.step;
    this.epochLossSum = json.epochLossSum;
    this.epochCorrect = json.epochCorrect;
    this.epochSeen = json.epochSeen;
  }

  /** Frees the trainer's own tensors (optimiser state, masks); the model stays with its owner. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.optimizer.dispose();
    tf.dispose([...this.maskTensors.values()]);
    this.maskTensors.clear();
  }

  /** Per-layer multipliers of this step: M, or M ⊙ Z / (1 − p) with Z from (seed, 'randomMask', step, layer). */
  private stepMultipliers(step: number): Map<string, tf.Tensor> {
    if (this.method.randomMaskRate === 0) return this.maskTensors;
    return new Map(this.layers.map((l) => {
      const m = randomWeightMultiplier(this.masks.get(l.name)!, this.method.randomMaskRate, Rng.derive(this.seed, 'randomMask', step, l.name));
      return [l.name, tf.tensor(m, l.shape as number[])];
    }));
  }

  /**
   * Prune and grow every masked layer; pruned weights and newly grown ones (inactive before the update)
   * and their momentum become 0, as in the RigL reference.
   */
  private updateMasks(step: number, effectiveGrads: Readonly<Record<string, tf.Tensor>>): Omit<MaskUpdateEvent, 'wallTimeMs'> {
    const dropFraction = this.schedule.dropFractionAt(step);
    const layers: LayerMaskUpdate[] = [];
    for (const layer of this.layers) {
      const mask = this.masks.get(layer.name)!;
      const weights = this.read(layer.name);
      const score = this.method.growScore({
        layer: layer.name, step, weights,
        denseGradient: effectiveGrads[layer.name].dataSync() as Float32Array,
        rng: Rng.derive(this.seed, 'grow', step, layer.name),
      });
      // Reselected positions (dropped and grown back at once) keep their value and momentum.
      const { pruned, grown, reselected } = pruneAndGrow(mask, weights, score, dropFraction, layer.name);
      const active = countActive(mask);
      if (active !== layer.active) throw new Error(`mask update of ${layer.name} changed its active count from ${layer.active} to ${active}`);
      const previouslyGrown = new Set(this.lastGrown.get(layer.name) ?? []);
      let regrownPruned = 0;
      for (const pos of pruned) if (previouslyGrown.has(pos)) regrownPruned++;

      const buffer = this.optimizer.buffers.get(layer.name)!;
      const momentum = buffer.dataSync().slice() as Float32Array;
      for (const pos of pruned) weights[pos] = momentum[pos] = 0;
      for (const pos of grown) weights[pos] = momentum[pos] = 0;
      this.write(this.param(layer.name), weights);
      this.write(buffer, momentum);
      this.maskTensors.get(layer.name)!.dispose();
      this.maskTensors.set(layer.name, tf.tensor(maskToFloat32(mask), layer.shape as number[]));
      this.lastGrown.set(layer.name, grown);
      layers.push({ layer: layer.name, pruned: pruned.length, grown: grown.length, reselected: reselected.length, density: active / layer.size, dropFraction, regrownPruned });
    }
    return { type: 'maskUpdate', step, epoch: Math.floor(step / this.stepsPerEpoch), layers };
  }

  /** A non-finite loss or gradient stops training before the step changes anything (see TrainingDiverged). */
  private assertFinite(step: number, loss: number, lr: number, grads: Readonly<Record<string, tf.Tensor>>): void {
    if (!Number.isFinite(loss)) throw new TrainingDiverged(step, loss, lr, 'the loss');
    const tensors = Object.entries(grads);
    if (tensors.length === 0) return;
    // One sum over every gradient: a NaN or ±Infinity anywhere makes it non-finite.
    const sumOf = (ts: tf.Tensor[]): number => {
      const total = tf.tidy(() => tf.addN(ts.map((g) => g.sum())));
      const value = total.dataSync()[0];
      total.dispose();
      return value;
    };
    if (Number.isFinite(sumOf(tensors.map(([, g]) => g)))) return;
    const culprit = tensors.find(([, g]) => !Number.isFinite(sumOf([g])));
    throw new TrainingDiverged(step, loss, lr, culprit ? `the gradient of ${culprit[0]}` : 'the sum of the gradients');
  }

  private checkBatch(batch: Batch): void {
    if (this.stepCount >= this.totalSteps) {
      throw new Error(`batch (epoch ${batch.epoch}, index ${batch.index}) arrived after the last of ${this.totalSteps} training steps`);
    }
    const epoch = this.epoch;
    const index = this.stepCount % this.stepsPerEpoch;
    if (batch.epoch !== epoch || batch.index !== index) {
      throw new Error(`batch (epoch ${batch.epoch}, index ${batch.index}) does not follow the trainer's position (epoch ${epoch}, index ${index})`);
    }
    const perImage = sizeOf(this.model.inputShape);
    // Image models need the exact [h, w, c]; flat-input models (mlp) only the pixel count.
    const imageShape = [batch.height, batch.width, batch.channels];
    const fits = this.model.inputShape.length === 3 ? imageShape.join(',') === this.model.inputShape.join(',') : sizeOf(imageShape) === perImage;
    if (!fits) {
      throw new Error(`batch (epoch ${batch.epoch}, index ${batch.index}): images are ${batch.height}×${batch.width}×${batch.channels}, model ${this.model.name} expects [${this.model.inputShape.join(', ')}]`);
    }
    if (batch.x.length !== batch.size * perImage || batch.labels.length !== batch.size || batch.size < 1) {
      throw new Error(`batch (epoch ${batch.epoch}, index ${batch.index}): size ${batch.size} does not match x (${batch.x.length} values) and labels (${batch.labels.length})`);
    }
    for (let i = 0; i < batch.labels.length; i++) {
      const label = batch.labels[i];
      if (!(label >= 0 && label < this.model.numClasses)) {
        throw new Error(`batch (epoch ${batch.epoch}, index ${batch.index}): label ${label} at ${i} is outside [0, ${this.model.numClasses})`);
      }
    }
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('this Trainer has been disposed');
  }

  private param(name: string): tf.Variable {
    const v = this.model.params.get(name);
    if (!v) throw new Error(`model ${this.model.name} has no parameter '${name}'`);
    return v;
  }

  /** A writable copy of a parameter's values. */
  private read(name: string): Float32Array {
    return this.param(name).dataSync().slice() as Float32Array;
  }

  private write(variable: tf.Variable, values: Float32Array): void {
    tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
  }
}

/**
 * The batch indices after which an averaged epoch of `stepsPerEpoch` batches takes its `count` snapshots:
 * evenly spaced, ⌈(j + 1) · stepsPerEpoch / count⌉ − 1 for j = 0 … count − 1, so the last is the epoch's
 * last batch.
 */
export function snapshotIndices(stepsPerEpoch: number, count: number): number[] {
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`average.snapshotsPerEpoch must be an integer ≥ 1, got ${count}`);
  if (count > stepsPerEpoch) {
    throw new Error(`average.snapshotsPerEpoch is ${count}, but an epoch has only ${stepsPerEpoch} batches; use at most ${stepsPerEpoch}`);
  }
  return Array.from({ length: count }, (_, j) => Math.ceil(((j + 1) * stepsPerEpoch) / count) - 1);
}
