import { filter, type OperatorFunction } from 'rxjs';
import type { TrainEvent } from './events';

export type TrainEventOfType<K extends TrainEvent['type']> = Extract<TrainEvent, { type: K }>;

/** Type guard for one kind of TrainEvent. */
export function isTrainEvent<K extends TrainEvent['type']>(type: K): (event: TrainEvent) => event is TrainEventOfType<K> {
  return (event): event is TrainEventOfType<K> => event.type === type;
}

/** Keeps only the events of one type, narrowed: `events$.pipe(ofType('maskUpdate'))`. */
export function ofType<K extends TrainEvent['type']>(type: K): OperatorFunction<TrainEvent, TrainEventOfType<K>> {
  return filter(isTrainEvent(type));
}
