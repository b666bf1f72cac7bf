import * as path from 'node:path';
import { lastValueFrom, map, reduce, tap, type Observable } from 'rxjs';
import { predictLogits, type LogitBatch } from '../calibrate/evaluate';
import { softmaxRow } from '../calibrate/softmax';
import { selectBackend, type BackendPreference } from '../compute/backend';
import type { Ops } from '../compute/ops';
import { decodeImage } from '../data/image-decode';
import type { ImageDataset } from '../data/types';
import { evalStream } from '../stream/batch-stream';
import { loadSavedModel, type SavedModel, type SavedModelMetadata } from './saved-model';

/**
 * Calibrated predictions from a saved model: each image normalised as in training (metadata's
 * normalisation, NHWC), the model's logits z on the fast compute path, and the calibrated class
 * probabilities softmax(z / T) with the temperature T fitted on the validation split and stored with the
 * model. The saved Layers model itself outputs logits; applying a plain softmax to them would throw the
 * calibration away.
 */

export interface PredictorOptions {
  /**
   * Compute path: 'auto' (default) takes @tensorflow/tfjs-node where installed, else cigl's native addon,
   * else stock tfjs (see selectBackend). Selecting one sets the tfjs backend of the process.
   */
  readonly backend?: BackendPreference;
  /** Where a fallback warning goes (default console.warn). */
  readonly warn?: (line: string) => void;
}

export interface PredictOptions {
  /** Classes listed per input, most probable first (default 3; at most the number of classes). */
  readonly topK?: number;
  /** Abstain (flag the prediction) when the calibrated confidence is below this, in [0, 1] (default 0: never). */
  readonly abstainBelow?: number;
  /** Images per forward pass (default 256). */
  readonly batchSize?: number;
  /** Told after every batch: images done so far, of `total`. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface ClassProbability {
  readonly classIndex: number;
  readonly className: string;
  /** Calibrated probability, softmax(logits / T). */
  readonly probability: number;
}

export interface Prediction {
  /** The input: a file path, or `<data set source>#<index>`. */
  readonly input: string;
  /** The most probable class; `confidence` is its calibrated probability. */
  readonly classIndex: number;
  readonly className: string;
  readonly confidence: number;
  /** True when `confidence` is below PredictOptions.abstainBelow: do not act on this prediction. */
  readonly abstained: boolean;
  /** The topK most probable classes, most probable first. */
  readonly top: readonly ClassProbability[];
  /** Calibrated probabilities of every class, in class order (they sum to 1). */
  readonly probabilities: Float64Array;
  /** The raw logits z (probabilities = softmax(z / temperature)). */
  readonly logits: Float32Array;
  /** The true label when the data has one (a data set split), else undefined. */
  readonly label?: number;
}

export class Predictor {
  private disposed = false;

  private constructor(
    private readonly saved: SavedModel,
    private readonly ops: Ops,
    /** The compute path, in words. */
    readonly backend: string,
  ) {}

  /** Selects the compute path and loads the model saved in `modelDir` (runs/NAME/model). */
  static async load(modelDir: string, options: PredictorOptions = {}): Promise<Predictor> {
    const { ops, description } = await selectBackend(options.backend ?? 'auto', { warn: options.warn });
    const saved = await loadSavedModel(modelDir);
    return new Predictor(saved, ops, description);
  }

  get metadata(): SavedModelMetadata {
    return this.saved.metadata;
  }

  get classNames(): readonly string[] {
    return this.saved.metadata.classNames;
  }

  /** The temperature T of softmax(logits / T). */
  get temperature(): number {
    return this.saved.temperature;
  }

  /** The logits of a data set's images, batch by batch (normalised with the model's statistics). */
  logitBatches(dataset: ImageDataset, options: Pick<PredictOptions, 'batchSize' | 'onProgress'> = {}): Observable<LogitBatch> {
    this.checkUsable();
    this.checkImages(dataset);
    const { model } = this.saved;
    let done = 0;
    return evalStream({ dataset, stats: this.saved.metadata.normalisation, batchSize: options.batchSize ?? 256, workers: 0 }).pipe(
      predictLogits(model, Object.fromEntries(model.params), this.ops),
      tap((batch) => options.onProgress?.((done += batch.labels.length), dataset.count)),
    );
  }

  /**
   * Calibrated predictions for a data set, one array per batch as they are computed. `inputs` names the
   * images (default `<source>#<index>`); labels are reported where the data set has them (≥ 0).
   */
  predictionBatches(dataset: ImageDataset, options: PredictOptions = {}, inputs?: readonly string[]): Observable<Prediction[]> {
    const topK = checkTopK(options.topK ?? 3, this.classNames.length);
    const abstainBelow = options.abstainBelow ?? 0;
    if (!(abstainBelow >= 0 && abstainBelow <= 1)) throw new Error(`abstainBelow must be in [0, 1], got ${abstainBelow}`);
    let first = 0;
    return this.logitBatches(dataset, options).pipe(
      map((batch) => {
        const out = calibratedPredictions(batch.logits, batch.numClasses, this.temperature, this.classNames, topK, abstainBelow).map((p, i) => {
          const index = first + i;
          const label = batch.labels[i];
          return { ...p, input: inputs?.[index] ?? `${dataset.source}#${index}`, ...(label >= 0 ? { label } : {}) };
        });
        first += batch.labels.length;
        return out;
      }),
    );
  }

  /** All predictions for a data set, in order. */
  predictDataset(dataset: ImageDataset, options: PredictOptions = {}): Promise<Prediction[]> {
    return lastValueFrom(this.predictionBatches(dataset, options).pipe(reduce((all: Prediction[], batch) => all.concat(batch), [])));
  }

  /** Predictions for image files (JPEG or PNG), decoded with sharp; each must have the model's input size. */
  async predictFiles(files: readonly string[], options: PredictOptions = {}): Promise<Prediction[]> {
    const dataset = await this.readImages(files);
    return lastValueFrom(this.predictionBatches(dataset, options, files).pipe(reduce((all: Prediction[], batch) => all.concat(batch), [])));
  }

  /** Decodes image files into a data set of unknown labels (−1), checking each against the input size. */
  async readImages(files: readonly string[]): Promise<ImageDataset> {
    const [height, width, channels] = this.saved.metadata.inputShape;
    if (channels !== 1 && channels !== 3) throw new Error(`model input has ${channels} channels; image files need 1 or 3`);
    if (files.length === 0) throw new Error('no image files given');
    const imageBytes = height * width * channels;
    const images = new Uint8Array(files.length * imageBytes);
    for (let i = 0; i < files.length; i++) {
      const image = await decodeImage(files[i], channels);
      if (image.height !== height || image.width !== width) {
        throw new Error(`${files[i]}: image is ${image.width}×${image.height}; the model takes ${width}×${height} images (resize it first)`);
      }
      images.set(image.data, i * imageBytes);
    }
    const source = files.length === 1 ? files[0] : `${files.length} files in ${path.dirname(files[0])}`;
    return { source, count: files.length, height, width, channels, images, labels: new Int32Array(files.length).fill(-1), classNames: this.classNames };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.saved.dispose();
  }

  private checkImages(dataset: ImageDataset): void {
    const [height, width, channels] = this.saved.metadata.inputShape;
    if (dataset.height !== height || dataset.width !== width || dataset.channels !== channels) {
      throw new Error(
        `${dataset.source}: images are ${dataset.height}×${dataset.width}×${dataset.channels}; the model takes ${height}×${width}×${channels}`,
      );
    }
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('Predictor: used after dispose()');
  }
}

/**
 * One call: loads the model, predicts image files or a data set split, releases the model. For many
 * calls, keep a Predictor.
 */
export async function predict(
  modelDir: string,
  input: readonly string[] | ImageDataset,
  options: PredictOptions & PredictorOptions = {},
): Promise<Prediction[]> {
  const predictor = await Predictor.load(modelDir, options);
  try {
    return isFileList(input) ? await predictor.predictFiles(input, options) : await predictor.predictDataset(input, options);
  } finally {
    predictor.dispose();
  }
}

/**
 * softmax(logits / temperature) per row ([n × classes], row-major), with the top-k classes and the
 * abstain flag; the same softmax the calibration metrics use.
 */
export function calibratedPredictions(
  logits: Float32Array,
  numClasses: number,
  temperature: number,
  classNames: readonly string[],
  topK: number,
  abstainBelow: number,
): Omit<Prediction, 'input' | 'label'>[] {
  const rows = logits.length / numClasses;
  const out: Omit<Prediction, 'input' | 'label'>[] = [];
  for (let r = 0; r < rows; r++) {
    const probabilities = new Float64Array(numClasses);
    softmaxRow(logits, r, numClasses, temperature, probabilities);
    const order = Array.from({ length: numClasses }, (_, k) => k).sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const top = order.slice(0, topK).map((k) => ({ classIndex: k, className: classNames[k], probability: probabilities[k] }));
    out.push({
      classIndex: top[0].classIndex,
      className: top[0].className,
      confidence: top[0].probability,
      abstained: top[0].probability < abstainBelow,
      top,
      probabilities,
      logits: logits.slice(r * numClasses, (r + 1) * numClasses),
    });
  }
  return out;
}

function checkTopK(topK: number, classes: number): number {
  if (!(Number.isInteger(topK) && topK >= 1)) throw new Error(`topK must be a positive integer, got ${topK}`);
  return Math.min(topK, classes);
}

function isFileList(input: readonly string[] | ImageDataset): input is readonly string[] {
  return Array.isArray(input);
}
