import type { Pipeline } from '../src/pipeline/run-job';
import * as stage from '../src/pipeline/stages';

/** RigL (or SET / static, by sparse.method): dynamic sparse training, the last weights, calibration. */
export const rigl: Pipeline = {
  name: 'rigl',
  description: 'RigL: prune by magnitude, grow by dense gradient; the final weights, then calibration',
  defaults: { sparse: { method: 'rigl' }, average: { enabled: false } },
  build: (run) =>
    stage.trainingBatches(run).pipe(
      stage.trainStage(run),
      stage.logMetrics(run),
      stage.showProgress(run),
      stage.checkpoints(run),
      stage.finishTraining(run),
      stage.recomputeBatchNorm(run),
      stage.calibrate(run),
      stage.writeOutputs(run),
    ),
};
