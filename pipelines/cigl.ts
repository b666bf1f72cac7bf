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
  build: (run) =>
    stage.trainingBatches(run).pipe(
      stage.trainStage(run),
      stage.logMetrics(run),
      stage.showProgress(run),
      stage.averageSnapshots(run),
      stage.checkpoints(run),
      stage.finishTraining(run),
      stage.averageWeights(run),
      stage.recomputeBatchNorm(run),
      stage.calibrate(run),
    ).pipe(
      // (two pipe() calls only because RxJS types at most nine operators per call)
      stage.writeOutputs(run),
    ),
};
