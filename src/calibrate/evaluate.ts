import * as tf from '@tensorflow/tfjs';
import { defer, finalize, map, reduce, type OperatorFunction } from 'rxjs';
import type { Ops } from '../compute/ops';
import type { Model } from '../models/model';
import { inputTensor, paramTensors, type ParamValues } from '../models/param-tensors';
import type { Batch } from '../stream/batch';
import { CalibrationAccumulator, type CalibrationOptions, type CalibrationReport } from './metrics';

/** A batch's logits as plain arrays, tagged with where it came from. */
export interface LogitBatch {
  readonly epoch: number;
  readonly index: number;
  readonly numClasses: number;
  /** size × numClasses, row-major. */
  readonly logits: Float32Array;
  readonly labels: Int32Array;
}

/** All logits of a split, concatenated in batch order. */
export interface SplitLogits {
  readonly numClasses: number;
  readonly logits: Float32Array;
  readonly labels: Int32Array;
}

/**
 * Evaluation: Batch → its logits under `model.apply(params, x, training = false)`, with the model's
 * current BatchNorm running statistics. Parameter tensors are made when the stream is subscribed and
 * released when it ends; every batch runs in tf.tidy, so tf.memory().numTensors is unchanged after.
 */
export function predictLogits(model: Model, params: ParamValues, ops: Ops): OperatorFunction<Batch, LogitBatch> {
  return (source) =>
    defer(() => {
      const tensors = paramTensors(model, params);
      return source.pipe(
        map((batch): LogitBatch => {
          const logits = tf.tidy(() => model.apply(tensors.tensors, inputTensor(model, batch), false, ops).dataSync() as Float32Array);
          return { epoch: batch.epoch, index: batch.index, numClasses: model.numClasses, logits: Float32Array.from(logits), labels: batch.labels };
        }),
        finalize(() => tensors.dispose()),
      );
    });
}

/** Streams logit batches into the calibration metrics; emits the report when the source completes. */
export function measureCalibration(numClasses: number, options?: CalibrationOptions): OperatorFunction<LogitBatch, CalibrationReport> {
  return (source) => source.pipe(measureCalibrationAt(numClasses, [options ?? {}]), map((reports) => reports[0]));
}

/**
 * One pass, several settings (e.g. T = 1 and the fitted temperature): one report per entry of
 * `optionsList`, in that order, when the source completes. Logits are not kept.
 */
export function measureCalibrationAt(
  numClasses: number,
  optionsList: readonly CalibrationOptions[],
): OperatorFunction<LogitBatch, CalibrationReport[]> {
  return (source) =>
    defer(() => {
      const accumulators = optionsList.map((options) => new CalibrationAccumulator(numClasses, options));
      return source.pipe(
        reduce((accs, b) => {
          for (const acc of accs) acc.addLogits(b.logits, b.labels, `batch (epoch ${b.epoch}, index ${b.index})`);
          return accs;
        }, accumulators),
        map((accs) => accs.map((acc) => acc.finalise())),
      );
    });
}

/** Concatenates logit batches into one split (needed where a metric reads the data more than once). */
export function gatherLogits(numClasses: number): OperatorFunction<LogitBatch, SplitLogits> {
  return (source) =>
    source.pipe(
      reduce((parts: LogitBatch[], b) => {
        if (b.numClasses !== numClasses) {
          throw new Error(`gatherLogits: batch (epoch ${b.epoch}, index ${b.index}) has ${b.numClasses} classes, expected ${numClasses}`);
        }
        parts.push(b);
        return parts;
      }, []),
      map((parts) => {
        const logits = new Float32Array(parts.reduce((s, b) => s + b.logits.length, 0));
        const labels = new Int32Array(parts.reduce((s, b) => s + b.labels.length, 0));
        let at = 0;
        for (const b of parts) {
          logits.set(b.logits, at * numClasses);
          labels.set(b.labels, at);
          at += b.labels.length;
        }
        return { numClasses, logits, labels };
      }),
    );
}
