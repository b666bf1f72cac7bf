import t from 'tap';
import type { RunContext } from '../../src/pipeline/run-context';
import * as stage from '../../src/pipeline/stages';
import { cigl } from '../../pipelines';

/**
 * Where the order of stages matters, the types say so: these compositions are checked by the compiler
 * when `npm test` builds (an @ts-expect-error that no longer meets an error fails the build). They are
 * never run.
 */
export function compositions(run: RunContext) {
  const fine = cigl.build(run); // the full order, as pipelines/cigl.ts composes it
  // logMetrics and showProgress read training events: not after averageSnapshots, whose stream also carries the average.
  // @ts-expect-error
  const logAfterAverage = stage.trainingBatches(run).pipe(stage.trainStage(run), stage.averageSnapshots(run), stage.logMetrics(run));
  // calibrate needs every model's BatchNorm statistics: not before recomputeBatchNorm.
  // @ts-expect-error
  const calibrateTooEarly = stage.trainingBatches(run).pipe(stage.trainStage(run), stage.finishTraining(run), stage.calibrate(run));
  // writeOutputs needs calibrated models.
  // @ts-expect-error
  const writeUncalibrated = stage.trainingBatches(run).pipe(stage.trainStage(run), stage.finishTraining(run), stage.recomputeBatchNorm(run), stage.writeOutputs(run));
  // The finishing stages take what finishTraining emits, not training events.
  // @ts-expect-error
  const averageEvents = stage.trainingBatches(run).pipe(stage.trainStage(run), stage.averageWeights(run));
  return [fine, logAfterAverage, calibrateTooEarly, writeUncalibrated, averageEvents];
}

t.test('the stage order is checked by the compiler (see compositions)', async (t) => {
  t.type(compositions, 'function', 'compiled, with every wrong order rejected');
});
