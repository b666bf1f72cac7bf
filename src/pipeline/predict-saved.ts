import * as path from 'node:path';
import { finalize, type Observable } from 'rxjs';
import type { RunIo } from '../job/io';
import { imageProgress } from '../report/progress';
import type { PredictRequest } from '../job/jobs';
import { readModelSplit } from '../predict/model-data';
import { Predictor, type Prediction } from '../predict/predictor';

/** What `cigl predict` writes out: the model's classes and temperature, and the predictions batch by batch. */
export interface PredictionRun {
  readonly classNames: readonly string[];
  readonly temperature: number;
  /** Inputs in all. */
  readonly total: number;
  /** The compute path, in words. */
  readonly backend: string;
  /** Calibrated predictions, one array per batch, in input order; the model is released when this ends. */
  readonly batches: Observable<Prediction[]>;
}

/**
 * `cigl predict`: loads the saved model on the fast compute path and predicts image files or a data set
 * split, with a progress line on stderr for long inputs. Subscribe to `batches` exactly once.
 */
export async function predictSaved(request: PredictRequest, io: RunIo): Promise<PredictionRun> {
  const predictor = await Predictor.load(request.modelDir, { backend: request.backend, warn: (line) => io.stderr.write(`${line}\n`) });
  try {
    const files = request.files.map((f) => path.resolve(io.cwd, f));
    const dataset = files.length > 0 ? await predictor.readImages(files) : await readModelSplit(predictor.metadata, request.modelDir, request);
    const progress = imageProgress(io.stderr, dataset.count, 'cigl predict');
    const batches = predictor
      .predictionBatches(dataset, { topK: request.topK, abstainBelow: request.abstainBelow, batchSize: request.batchSize, onProgress: (done) => progress.done(done) }, files.length > 0 ? request.files : undefined)
      .pipe(
        finalize(() => {
          progress.finish();
          predictor.dispose();
        }),
      );
    return { classNames: predictor.classNames, temperature: predictor.temperature, total: dataset.count, backend: predictor.backend, batches };
  } catch (err) {
    predictor.dispose();
    throw err;
  }
}
