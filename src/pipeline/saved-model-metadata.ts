import type { BeforeAfter } from '../calibrate/stage';
import type { RunConfig } from '../config/config';
import { ModelMetadataSchema, type ModelMetadata } from '../sinks/model-metadata';
import type { LayerDensity, ModelDensity } from '../sparse/model-density';
import type { RunData } from './run-data';

export interface SavedModelFacts {
  readonly config: RunConfig;
  readonly configHash: string;
  readonly data: RunData;
  /** The saved model's stage (the run's headline). */
  readonly stage: string;
  readonly temperature: number;
  readonly evaluatedOn: string;
  /** The saved model's numbers on `evaluatedOn`, at T = 1 and at the fitted temperature. */
  readonly report: BeforeAfter;
  readonly layers: readonly LayerDensity[];
  readonly density: ModelDensity;
  readonly temperatureScaling: boolean;
}

/** The metadata writeOutputs stores with the saved model (see ModelMetadataSchema), checked against its schema. */
export function savedModelMetadata(f: SavedModelFacts): ModelMetadata {
  const { config, data } = f;
  const ece = (r: BeforeAfter['before']) => Object.fromEntries(r.equalWidth.map((b) => [String(b.bins), b.ece]));
  return ModelMetadataSchema.parse({
    generatedBy: 'cigl',
    method: config.sparse.method,
    model: config.model.name,
    configHash: f.configHash,
    seed: config.seed,
    data: { format: config.data.format, path: config.data.path, validationFraction: config.data.validationFraction, trainImages: config.data.trainImages },
    classNames: data.classNames,
    inputShape: [data.train.height, data.train.width, data.train.channels],
    normalisation: data.stats,
    temperature: f.temperature,
    stage: f.stage,
    accuracy: f.report.before.accuracy,
    ece: ece(f.report.before),
    ...(f.temperatureScaling ? { temperatureScaled: { ece: ece(f.report.after), nll: f.report.after.nll } } : {}),
    evaluatedOn: f.evaluatedOn,
    layers: f.layers.map((l) => ({ ...l, sparsity: 1 - l.active / l.size })),
    density: f.density,
  });
}
