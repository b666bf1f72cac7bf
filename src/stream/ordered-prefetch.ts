import { setMaxListeners } from 'node:events';
import { Observable } from 'rxjs';

export interface PrefetchOptions {
  /**
   * Most items produced or in production but not yet consumed, ≥ 1. Memory held by the stream is bounded
   * by this many results, however slow the consumer.
   */
  readonly prefetch: number;
  /**
   * Acknowledgements from an asynchronous consumer: each emission says "one more item is fully consumed",
   * in delivery order. When given, an item counts against `prefetch` from the start of its production
   * until its acknowledgement; when absent, until the subscriber's synchronous `next` returns (exact
   * for synchronous consumers, but an async consumer such as concatMap(async …) would then buffer
   * without bound; give it this). Acknowledgements beyond the items delivered are ignored.
   */
  readonly consumed?: Observable<unknown>;
}

/**
 * Maps `items` through the async `produce` with at most `prefetch` items outstanding, and delivers
 * results (and failures) in item order, whatever order they finish in. Unsubscribing aborts the signal
 * given to every unfinished `produce`, so queued work is dropped.
 */
export function orderedPrefetch<T, R>(
  items: () => Iterator<T>,
  produce: (item: T, signal: AbortSignal) => Promise<R>,
  options: PrefetchOptions,
): Observable<R> {
  const { prefetch, consumed } = options;
  if (!(Number.isInteger(prefetch) && prefetch >= 1)) throw new Error(`prefetch must be an integer ≥ 1, got ${prefetch}`);
  return new Observable<R>((subscriber) => {
    const abort = new AbortController();
    setMaxListeners(prefetch + 10, abort.signal); // produce() may listen once per item in flight
    const iterator = items();
    type Outcome = { ok: true; value: R } | { ok: false; error: unknown };
    const finished = new Map<number, Outcome>();
    let submitted = 0;
    let delivered = 0;
    let acknowledged = 0;
    let exhausted = false;
    let closed = false;
    let delivering = false;

    const outstanding = () => submitted - (consumed ? acknowledged : delivered);

    const fail = (error: unknown) => {
      if (closed) return;
      closed = true;
      abort.abort();
      subscriber.error(error);
    };

    const pump = (): void => {
      while (!closed && !exhausted && outstanding() < prefetch) {
        let next: IteratorResult<T>;
        try {
          next = iterator.next();
        } catch (err) {
          return fail(err);
        }
        if (next.done) {
          exhausted = true;
          break;
        }
        const seq = submitted++;
        produce(next.value, abort.signal).then(
          (value) => settle(seq, { ok: true, value }),
          (error) => settle(seq, { ok: false, error }),
        );
      }
      if (!closed && !delivering && exhausted && delivered === submitted) {
        closed = true;
        subscriber.complete();
      }
    };

    const settle = (seq: number, outcome: Outcome) => {
      if (closed) return; // aborted work after teardown: drop it
      finished.set(seq, outcome);
      deliver();
    };

    const deliver = () => {
      if (delivering) return; // re-entered from a consumer's synchronous acknowledgement
      delivering = true;
      try {
        while (!closed && finished.has(delivered)) {
          const outcome = finished.get(delivered)!;
          finished.delete(delivered);
          if (!outcome.ok) return fail(outcome.error);
          delivered++;
          subscriber.next(outcome.value);
        }
      } finally {
        delivering = false;
      }
      pump();
    };

    const acks = consumed?.subscribe({
      next: () => {
        if (acknowledged < delivered) acknowledged++;
        if (!delivering) pump();
      },
      error: fail,
    });
    pump();
    return () => {
      closed = true;
      abort.abort();
      acks?.unsubscribe();
    };
  });
}
