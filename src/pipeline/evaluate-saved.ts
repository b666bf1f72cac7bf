import { lastValueFrom } from 'rxjs';
import { gatherLogits } from '../calibrate/evaluate';
import { calibrationMetrics, type CalibrationReport } from '../calibrate/metrics';
import type { RunIo } from '../job/io';
import { imageProgress } from '../report/progress';
import type { EvalReport, EvalRequest } from '../job/jobs';
import { readModelSplit } from '../predict/model-data';
import { Predictor } from '../predict/predictor';
import { STAGES, type StageResult } from '../sinks/summary';

/**
 * `cigl eval`: a saved model (runs/NAME/model) on a data split, its forward pass on the fast compute
 * path (the model rebuilt from its architecture and saved weights, see predict/saved-model.ts); metrics
 * at T = 1 and at the temperature stored with the model.
 */
export async function evaluateSavedModel(request: EvalRequest, io: RunIo): Promise<EvalReport> {
  const predictor = await Predictor.load(request.modelDir, { backend: request.backend, warn: (line) => io.stderr.write(`${line}\n`) });
  try {
    const { metadata } = predictor;
    const dataset = await readModelSplit(metadata, request.modelDir, request);
    const numClasses = metadata.classNames.length;
    const progress = imageProgress(io.stderr, dataset.count, `cigl eval: ${request.split} split`);
    const { logits, labels } = await lastValueFrom(
      predictor.logitBatches(dataset, { batchSize: request.batchSize, onProgress: (done) => progress.done(done) }).pipe(gatherLogits(numClasses)),
    ).finally(() => progress.finish());
    const at = (temperature: number): CalibrationReport => calibrationMetrics(logits, labels, numClasses, { binCounts: request.bins, temperature });
    const result = (stage: string, r: CalibrationReport, temperature?: number): StageResult => ({
      stage, accuracy: r.accuracy, ece: Object.fromEntries(r.equalWidth.map((b) => [String(b.bins), b.ece])), nll: r.nll, brier: r.brier, temperature,
    });
    // The saved model is its run's headline model (metadata.stage names it); its stored temperature in columns of its own.
    const stage = metadata.stage ? `saved model (${metadata.stage})` : 'saved model';
    const results = [result(stage, at(1))];
    if (predictor.temperature !== 1) results.push({ ...result(STAGES.temperatureScaled, at(predictor.temperature), predictor.temperature), scaled: stage });
    io.stderr.write(`cigl: evaluated ${dataset.count} images of ${dataset.source} (${predictor.backend})\n`);
    return { split: request.split, results, layers: metadata.layers, density: metadata.density };
  } finally {
    predictor.dispose();
  }
}
