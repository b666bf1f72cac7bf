import { z } from 'zod';
import type { SnapshotEvent } from '../train/events';
import { sizeOf, type NamedArray, type NamedArrays } from '../util/named-arrays';
import { keepTopMagnitudes } from './top-k-mask';

/**
 * Equal-weight running mean of snapshot weights, W̄ = (1/n) Σ S_e, in O(one model) memory: a float64
 * sum per parameter plus, per masked layer, the first and the latest mask as bytes.
 *
 * Every parameter is averaged the same way (masked weights arrive already as M ⊙ Z_e ⊙ W / (1 − p);
 * biases and BatchNorm affine parameters as they are). Final masks:
 * - all snapshots share a layer's mask (the reference case, M frozen before averaging): that mask, with
 *   W̄ zeroed outside it (already zero there when the snapshots are effective weights);
 * - the masks differ: keep the top-|W̄| entries so that the layer has exactly its target active count,
 *   the active count every snapshot mask has (see top-k-mask.ts for the tie rule).
 */

export interface AveragedWeights {
  readonly weights: NamedArrays;
  /** Final masks of the masked layers, 1 = active. */
  readonly masks: NamedArrays;
  readonly snapshots: number;
  /** Epochs of the averaged snapshots, in arrival order. */
  readonly epochs: readonly number[];
  /** Steps of the first and the last averaged snapshot. */
  readonly firstStep: number;
  readonly lastStep: number;
  /** Masked layers whose snapshot masks differed, so the top-|W̄| rule chose their final mask. */
  readonly reMaskedLayers: readonly string[];
}

/** Checkpoint form of a SnapshotMean (see exportState). */
export interface SnapshotMeanState {
  readonly arrays: NamedArrays;
  readonly json: SnapshotMeanStateJson;
}

/** The JSON part of a SnapshotMean's checkpoint form. */
export const SnapshotMeanStateJsonSchema = z.object({
  epochs: z.array(z.number().int()),
  steps: z.array(z.number().int()),
  shapes: z.record(z.string(), z.array(z.number().int())),
  masks: z.record(z.string(), z.object({ activeCount: z.number().int(), differs: z.boolean() })),
});
export type SnapshotMeanStateJson = z.infer<typeof SnapshotMeanStateJsonSchema>;

interface LayerMask {
  readonly first: Uint8Array;
  readonly latest: Uint8Array;
  readonly activeCount: number;
  differs: boolean;
}

export class SnapshotMean {
  private readonly sums = new Map<string, { shape: readonly number[]; sum: Float64Array }>();
  private readonly masks = new Map<string, LayerMask>();
  private readonly epochList: number[] = [];
  private readonly stepList: number[] = [];

  /** The training step of the latest snapshot added (-1 before the first). */
  get lastStep(): number {
    return this.stepList.length === 0 ? -1 : this.stepList[this.stepList.length - 1];
  }

  get count(): number {
    return this.epochList.length;
  }

  /** Folds one snapshot in; throws (naming the parameter and epoch) if it does not match the first one. */
  add(snapshot: SnapshotEvent): void {
    const where = `snapshot of epoch ${snapshot.epoch} (step ${snapshot.step})`;
    const first = this.count === 0;
    const names = Object.keys(snapshot.weights);
    if (!first) {
      const missing = [...this.sums.keys()].filter((n) => !(n in snapshot.weights));
      const extra = names.filter((n) => !this.sums.has(n));
      if (missing.length > 0 || extra.length > 0) {
        throw new Error(`averaging: ${where} has parameters that differ from the first snapshot's (missing [${missing}], extra [${extra}])`);
      }
      const maskNames = Object.keys(snapshot.masks);
      if (maskNames.length !== this.masks.size || maskNames.some((n) => !this.masks.has(n))) {
        throw new Error(`averaging: ${where} masks layers [${maskNames}], the first snapshot [${[...this.masks.keys()]}]`);
      }
    }
    const newMasks = Object.entries(snapshot.masks).map(([name, mask]) => [name, this.readMask(name, mask, snapshot, where)] as const);
    for (const name of names) {
      const { shape, values } = snapshot.weights[name];
      const expected = this.sums.get(name)?.shape ?? shape;
      if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
        throw new Error(`averaging: ${where}, parameter '${name}' has shape [${shape}], the first snapshot [${expected}]`);
      }
      if (values.length !== sizeOf(shape)) {
        throw new Error(`averaging: ${where}, parameter '${name}' has ${values.length} values for shape [${shape}]`);
      }
      const bad = values.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`averaging: ${where}, parameter '${name}' has ${values[bad]} at index ${bad}`);
    }
    // Checked in full above, so a rejected snapshot leaves the mean untouched.
    for (const name of names) {
      const { shape, values } = snapshot.weights[name];
      let entry = this.sums.get(name);
      if (!entry) {
        entry = { shape: [...shape], sum: new Float64Array(values.length) };
        this.sums.set(name, entry);
      }
      const sum = entry.sum;
      for (let i = 0; i < values.length; i++) sum[i] += values[i];
    }
    for (const [name, bits] of newMasks) {
      const layer = this.masks.get(name);
      if (!layer) {
        this.masks.set(name, { first: bits.slice(), latest: bits, activeCount: countActive(bits), differs: false });
      } else {
        if (!layer.differs) layer.differs = bits.some((b, i) => b !== layer.first[i]);
        layer.latest.set(bits);
      }
    }
    this.epochList.push(snapshot.epoch);
    this.stepList.push(snapshot.step);
  }

  /** The mean so far and the final masks; the accumulator stays usable. */
  result(): AveragedWeights {
    const n = this.count;
    if (n === 0) throw new Error('averaging: no snapshot has been added');
    const weights: Record<string, NamedArray> = {};
    for (const [name, { shape, sum }] of this.sums) {
      const values = new Float32Array(sum.length);
      for (let i = 0; i < sum.length; i++) values[i] = sum[i] / n;
      weights[name] = { shape, values };
    }
    const masks: Record<string, NamedArray> = {};
    const reMaskedLayers: string[] = [];
    for (const [name, layer] of this.masks) {
      const values = weights[name].values;
      const keep = layer.differs ? keepTopMagnitudes(values, layer.activeCount, layer.latest) : layer.first;
      if (layer.differs) reMaskedLayers.push(name);
      const mask = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        if (keep[i]) mask[i] = 1;
        else values[i] = 0;
      }
      masks[name] = { shape: weights[name].shape, values: mask };
    }
    return { weights, masks, snapshots: n, epochs: [...this.epochList], firstStep: this.stepList[0], lastStep: this.stepList[n - 1], reMaskedLayers };
  }

  /**
   * The accumulator as checkpoint data. The float64 sums travel bit-exactly as their raw bytes viewed as
   * float32 pairs (a resumed run must average to the same bits), under `sum/NAME`; masks as 0/1 arrays.
   */
  exportState(): SnapshotMeanState {
    const arrays: Record<string, NamedArray> = {};
    const shapes: Record<string, number[]> = {};
    for (const [name, { shape, sum }] of this.sums) {
      arrays[`sum/${name}`] = { shape: [sum.length * 2], values: new Float32Array(sum.slice().buffer) };
      shapes[name] = [...shape];
    }
    const masks: Record<string, { activeCount: number; differs: boolean }> = {};
    for (const [name, layer] of this.masks) {
      arrays[`maskFirst/${name}`] = { shape: [layer.first.length], values: Float32Array.from(layer.first) };
      arrays[`maskLatest/${name}`] = { shape: [layer.latest.length], values: Float32Array.from(layer.latest) };
      masks[name] = { activeCount: layer.activeCount, differs: layer.differs };
    }
    return { arrays, json: { epochs: [...this.epochList], steps: [...this.stepList], shapes, masks } };
  }

  /** The inverse of exportState. */
  static fromState(state: SnapshotMeanState): SnapshotMean {
    const mean = new SnapshotMean();
    const array = (key: string): NamedArray => {
      const found = state.arrays[key];
      if (!found) throw new Error(`averaging state: missing array '${key}'`);
      return found;
    };
    for (const [name, shape] of Object.entries(state.json.shapes)) {
      const raw = array(`sum/${name}`).values;
      const sum = new Float64Array(raw.slice().buffer);
      if (sum.length !== sizeOf(shape)) throw new Error(`averaging state: '${name}' has ${sum.length} sums for shape [${shape}]`);
      mean.sums.set(name, { shape: [...shape], sum });
    }
    for (const [name, { activeCount, differs }] of Object.entries(state.json.masks)) {
      const first = Uint8Array.from(array(`maskFirst/${name}`).values);
      const latest = Uint8Array.from(array(`maskLatest/${name}`).values);
      mean.masks.set(name, { first, latest, activeCount, differs });
    }
    if (!Array.isArray(state.json.steps) || state.json.steps.length !== state.json.epochs.length) {
      throw new Error(`averaging state: 'steps' must list one step per snapshot (${state.json.epochs.length}), got ${JSON.stringify(state.json.steps)}`);
    }
    mean.epochList.push(...state.json.epochs);
    mean.stepList.push(...state.json.steps);
    return mean;
  }

  /** Checks a snapshot mask (0/1 values, a weight of the same size, the layer's active count) and packs it. */
  private readMask(name: string, mask: NamedArray, snapshot: SnapshotEvent, where: string): Uint8Array {
    const weight = snapshot.weights[name];
    if (!weight) throw new Error(`averaging: ${where} has a mask for '${name}' but no such parameter`);
    if (weight.values.length !== mask.values.length) {
      throw new Error(`averaging: ${where}, mask of '${name}' has ${mask.values.length} entries, the weight ${weight.values.length}`);
    }
    const bits = new Uint8Array(mask.values.length);
    for (let i = 0; i < bits.length; i++) {
      const v = mask.values[i];
      if (v !== 0 && v !== 1) throw new Error(`averaging: ${where}, mask of '${name}' has value ${v} at ${i}; masks are 0 or 1`);
      bits[i] = v;
    }
    const layer = this.masks.get(name);
    if (layer && countActive(bits) !== layer.activeCount) {
      throw new Error(
        `averaging: ${where}, mask of '${name}' has ${countActive(bits)} active weights, the first snapshot ` +
          `${layer.activeCount}; a layer's density must not change between snapshots`,
      );
    }
    return bits;
  }
}

function countActive(bits: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < bits.length; i++) n += bits[i];
  return n;
}
