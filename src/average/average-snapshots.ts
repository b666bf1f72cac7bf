import { Observable, type OperatorFunction } from 'rxjs';
import type { TrainEvent } from '../train/events';
import { SnapshotMean, type AveragedWeights } from './snapshot-mean';

/** What the averaging stage emits. */
export interface AveragedModel extends AveragedWeights {
  /** True for the emission at the source's completion; false for one requested through `emitOn`. */
  readonly final: boolean;
}

export interface AverageSnapshotsOptions {
  /** Snapshots of earlier epochs are ignored (the training stage normally emits none before the start). */
  readonly fromEpoch?: number;
  /** Each value emits the average so far (if there is one), e.g. for an interim evaluation. */
  readonly emitOn?: Observable<unknown>;
  /**
   * The accumulator to fold into, e.g. one restored from a checkpoint, or one a checkpoint stage reads.
   * Default: a new one per subscription.
   */
  readonly mean?: SnapshotMean;
}

/**
 * Weight & mask averaging stage. In: the training stage's TrainEvents; only `snapshot` events are read.
 * Out: the equal-weight mean of the snapshots with the final masks (see SnapshotMean), once when the
 * source completes, and once per `emitOn` value before that. Memory is O(one model) however many
 * snapshots arrive. A source that completes without a snapshot is an error (averaging was configured
 * but never started).
 */
export function averageSnapshots(options: AverageSnapshotsOptions = {}): OperatorFunction<TrainEvent, AveragedModel> {
  const fromEpoch = options.fromEpoch ?? 0;
  return (source) =>
    new Observable<AveragedModel>((subscriber) => {
      const mean = options.mean ?? new SnapshotMean();
      const emit = (final: boolean): boolean => {
        try {
          subscriber.next({ ...mean.result(), final });
          return true;
        } catch (e) {
          subscriber.error(e);
          return false;
        }
      };
      const onDemand = options.emitOn?.subscribe({
        next: () => {
          if (mean.count > 0) emit(false);
        },
        error: (e) => subscriber.error(e),
      });
      const events = source.subscribe({
        next: (event) => {
          if (event.type !== 'snapshot' || event.epoch < fromEpoch) return;
          try {
            mean.add(event);
          } catch (e) {
            subscriber.error(e);
          }
        },
        error: (e) => subscriber.error(e),
        complete: () => {
          if (mean.count === 0) {
            subscriber.error(new Error(`averaging: the training events ended without a snapshot from epoch ${fromEpoch} on`));
          } else if (emit(true)) {
            subscriber.complete();
          }
        },
      });
      return () => {
        events.unsubscribe();
        onDemand?.unsubscribe();
      };
    });
}
