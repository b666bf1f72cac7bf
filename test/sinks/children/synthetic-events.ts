import type { TrainEvent } from '../../../src/train/events';

/**
 * Deterministic TrainEvents for sink tests: `count` steps from `firstStep`, 10 steps per epoch, an epoch
 * end after each 10th step and a mask update every 20 steps. Every value is a function of the step, so
 * a reader can check any row it gets back.
 */
export function syntheticEvents(firstStep: number, count: number, wallOffset = 0): TrainEvent[] {
  const events: TrainEvent[] = [];
  for (let step = firstStep; step < firstStep + count; step++) {
    const epoch = Math.floor(step / 10);
    const wallTimeMs = step * 10 + wallOffset;
    events.push({ type: 'step', step, epoch, loss: lossAt(step), accuracy: (step % 100) / 100, lr: 0.1, imagesPerSecond: 2 * step, wallTimeMs });
    if (step % 20 === 0) {
      events.push({
        type: 'maskUpdate',
        step,
        epoch,
        wallTimeMs,
        layers: ['conv1', 'fc1'].map((layer, i) => ({ layer, pruned: step + i, grown: step + i, reselected: 2 * i, density: 0.1, dropFraction: 0.3, regrownPruned: i })),
      });
    }
    if (step % 10 === 9) {
      events.push({ type: 'epochEnd', step, epoch, trainLoss: lossAt(step), trainAccuracy: 0.5, validationLoss: 2 * lossAt(step), validationAccuracy: 0.4, validationEce: 0.05, wallTimeMs });
    }
  }
  return events;
}

export function lossAt(step: number): number {
  return 1 / (step + 1);
}
