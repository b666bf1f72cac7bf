import { concatMap, defer, finalize, from, type Observable, type OperatorFunction } from 'rxjs';
import type { Batch } from '../stream/batch';
import type { TrainEvent } from './events';
import { Trainer, type TrainerConfig } from './trainer';

/**
 * The training stage: batches in, TrainEvents out. Batches are processed strictly one at a time in
 * arrival order (each must continue the trainer's position: epoch and index); every batch emits its
 * `step` event (plus `maskUpdate` on update steps) and the last batch of an epoch also the `snapshot`
 * (from the averaging start epoch on) and `epochEnd` events. Errors (bad batch, failed validation)
 * propagate downstream.
 *
 * Given a config, each subscription builds its own Trainer and disposes it on completion, error or
 * unsubscribe. Given a Trainer, the caller keeps ownership (e.g. to export its state for a checkpoint
 * afterwards) and must dispose it.
 */
export function train(trainerOrConfig: Trainer | TrainerConfig): OperatorFunction<Batch, TrainEvent> {
  return (batches: Observable<Batch>) =>
    defer(() => {
      const owned = !(trainerOrConfig instanceof Trainer);
      const trainer = trainerOrConfig instanceof Trainer ? trainerOrConfig : new Trainer(trainerOrConfig);
      return batches.pipe(
        concatMap((batch) => from(trainer.process(batch)).pipe(concatMap((events) => events))),
        finalize(() => {
          if (owned) trainer.dispose();
        }),
      );
    });
}
