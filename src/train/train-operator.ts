import { concat, concatMap, defer, finalize, from, of, type Observable, type OperatorFunction } from 'rxjs';
import type { Batch } from '../stream/batch';
import type { BatchEndEvent, TrainEvent } from './events';
import { Trainer, type TrainerConfig } from './trainer';

/**
 * The training stage: batches in, TrainEvents out. Batches are processed strictly one at a time in
 * arrival order (each must continue the trainer's position: epoch and index); every batch emits its
 * `step` event (plus `maskUpdate` on update steps) and the last batch of an epoch also the `snapshot`
 * (from the averaging start epoch on) and `epochEnd` events. Errors (bad batch, failed validation)
 * propagate downstream.
 *
 * Every batch ends with a `batchEnd` event, emitted after the batch's other events have been delivered.
 *
 * Given a config, each subscription builds its own Trainer and disposes it on completion, error or
 * unsubscribe. Given a Trainer, the caller keeps ownership (e.g. to export its state for a checkpoint
 * afterwards) and must dispose it.
 */
export function train(trainerOrConfig: Trainer | TrainerConfig, options: TrainStageOptions = {}): OperatorFunction<Batch, TrainEvent> {
  return (batches: Observable<Batch>) =>
    defer(() => {
      const owned = !(trainerOrConfig instanceof Trainer);
      const trainer = trainerOrConfig instanceof Trainer ? trainerOrConfig : new Trainer(trainerOrConfig);
      return batches.pipe(
        concatMap((batch) =>
          from(nextTurn().then(() => trainer.process(batch))).pipe(
            concatMap((events) => concat(from(events), defer(() => of(batchEnd(batch, trainer))))),
            finalize(() => options.consumed?.next()),
          ),
        ),
        finalize(() => {
          if (owned) trainer.dispose();
        }),
      );
    });
}

export interface TrainStageOptions {
  /**
   * Told once per batch after all its events were delivered: pass the batch stream's `consumed`
   * subject so that the stream keeps at most `prefetch` batches ahead of training (the step is async).
   */
  readonly consumed?: { next(value?: unknown): void };
}

/**
 * Resolves on a later turn of the event loop. Buffered batches would otherwise be trained back to back
 * in one chain of promise callbacks, starving timers, I/O and signal handlers for the whole run (a
 * daemon serving HTTP in the same process, or a SIGTERM asking for a graceful stop, would wait for the
 * run's end). One turn per step costs microseconds.
 */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function batchEnd(batch: Batch, trainer: Trainer): BatchEndEvent {
  return {
    type: 'batchEnd',
    step: trainer.step - 1,
    epoch: batch.epoch,
    index: batch.index,
    epochEnded: batch.index === trainer.stepsPerEpoch - 1,
    wallTimeMs: Date.now(),
  };
}
