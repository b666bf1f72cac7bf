import { concatMap, defer, firstValueFrom, from, map, type Observable, type ObservableInput, type OperatorFunction } from 'rxjs';
import type { Ops } from '../compute/ops';
import type { Model } from '../models/model';
import type { ParamValues } from '../models/param-tensors';
import type { Batch } from '../stream/batch';
import type { NamedArrays } from '../util/named-arrays';
import { gatherLogits, measureCalibration, measureCalibrationAt, predictLogits } from './evaluate';
import type { CalibrationOptions, CalibrationReport } from './metrics';
import { temperatureScale, type TemperatureFit, type TemperatureOptions } from './temperature';

/** Evaluation batch streams (no augmentation). Each is subscribed once per model calibrated. */
export interface CalibrationSplits {
  readonly validation: ObservableInput<Batch>;
  readonly test?: ObservableInput<Batch>;
}

export interface BeforeAfter {
  /** At T = 1. */
  readonly before: CalibrationReport;
  /** At the fitted temperature. */
  readonly after: CalibrationReport;
}

export interface CalibrationOutcome {
  /** The temperature fitted on the validation split; store `temperature.temperature` with the model. */
  readonly temperature: TemperatureFit;
  readonly validation: BeforeAfter;
  readonly test?: BeforeAfter;
}

export type CalibrateOptions = CalibrationOptions & TemperatureOptions;

/** The metrics of one split at T = 1 and at `temperature`, streamed batch by batch (logits are not kept). */
export function evaluateSplit(
  model: Model,
  params: ParamValues,
  ops: Ops,
  batches: ObservableInput<Batch>,
  temperature: number,
  options: CalibrationOptions = {},
): Observable<BeforeAfter> {
  return from(batches).pipe(
    predictLogits(model, params, ops),
    measureCalibrationAt(model.numClasses, [{ ...options, temperature: 1 }, { ...options, temperature }]),
    map(([before, after]) => ({ before, after })),
  );
}

/**
 * Calibrates one model: evaluates the validation split, fits the temperature there by NLL, reports the
 * validation metrics before/after, then (if given) the test split before/after with that temperature.
 * Uses the model's current BatchNorm running statistics (recompute them first after averaging).
 */
export function calibrateModel(
  model: Model,
  params: ParamValues,
  ops: Ops,
  splits: CalibrationSplits,
  options: CalibrateOptions = {},
): Observable<CalibrationOutcome> {
  return defer(async (): Promise<CalibrationOutcome> => {
    const validationLogits = await firstValueFrom(from(splits.validation).pipe(predictLogits(model, params, ops), gatherLogits(model.numClasses)));
    const scaled = temperatureScale(validationLogits.logits, validationLogits.labels, model.numClasses, options);
    const validation = { before: scaled.before, after: scaled.after };
    if (splits.test === undefined) return { temperature: scaled.fit, validation };
    const test = await firstValueFrom(evaluateSplit(model, params, ops, splits.test, scaled.fit.temperature, options));
    return { temperature: scaled.fit, validation, test };
  });
}

/** Metrics of a split at T = 1 straight from the batch stream, without keeping the logits. */
export function measureSplit(
  model: Model,
  params: ParamValues,
  ops: Ops,
  batches: ObservableInput<Batch>,
  options?: CalibrationOptions,
): Observable<CalibrationReport> {
  return from(batches).pipe(predictLogits(model, params, ops), measureCalibration(model.numClasses, options));
}
