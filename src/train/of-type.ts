import { filter, tap, type MonoTypeOperatorFunction, type OperatorFunction } from 'rxjs';
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

/**
 * A pass-through stage that calls `handler` with every event of one type, narrowed, e.g.
 * `onEvent('maskUpdate', (e) => console.log(e.step, e.layers))`. An error thrown by the handler ends the run.
 */
export function onEvent<K extends TrainEvent['type']>(type: K, handler: (event: TrainEventOfType<K>) => void): MonoTypeOperatorFunction<TrainEvent> {
  const matches = isTrainEvent(type);
  return tap((event) => {
    if (matches(event)) handler(event);
  });
}
