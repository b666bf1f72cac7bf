import type { Pipeline } from '../src/pipeline/run-job';
import * as stage from '../src/pipeline/stages';

/**
 * CigL: RigL's deterministic mask plus a per-step random weight mask, snapshots from the averaging start
 * epoch, their weight & mask average with recomputed BatchNorm statistics, then calibration.
 */
export const cigl: Pipeline = {
  name: 'cigl',
  description: 'CigL: RigL + random weight mask + weight & mask averaging, then calibration',
  defaults: { sparse: { method: 'cigl' }, average: { enabled: true } },
  build: (ctx) =>
    stage.trainingBatches(ctx).pipe(
      stage.trainStage(ctx),
      stage.foldSnapshots(ctx),
      stage.logMetrics(ctx),
      stage.showProgress(ctx),
      stage.checkpoints(ctx),
    ).pipe(
      // (two pipe() calls only because RxJS types at most nine operators per call)
      stage.finishTraining(ctx),
      stage.averageWeights(ctx),
      stage.recomputeBatchNorm(ctx),
      stage.calibrate(ctx),
      stage.writeOutputs(ctx),
    ),
};
