import type { Pipeline } from '../src/pipeline/run-job';
import * as stage from '../src/pipeline/stages';

/** RigL (or SET / static, by sparse.method): dynamic sparse training, the last weights, calibration. */
export const rigl: Pipeline = {
  name: 'rigl',
  description: 'RigL: prune by magnitude, grow by dense gradient; the final weights, then calibration',
  defaults: { sparse: { method: 'rigl' }, average: { enabled: false } },
  build: (ctx) =>
    stage.trainingBatches(ctx).pipe(
      stage.trainStage(ctx),
      stage.logMetrics(ctx),
      stage.showProgress(ctx),
      stage.checkpoints(ctx),
      stage.finishTraining(ctx),
      stage.recomputeBatchNorm(ctx),
      stage.calibrate(ctx),
      stage.writeOutputs(ctx),
    ),
};
