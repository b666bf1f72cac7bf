import type * as http from 'node:http';
import { HttpError } from './http-error';

/**
 * The long-lived responses (event streams, Arrow streams) the daemon is serving: bounded in number (a
 * request beyond the limit gets 503), counted for `GET /metrics`, and all ended at once on shutdown.
 */
export type StreamKind = 'events' | 'arrow';

export class StreamRegistry {
  private readonly open = new Map<AbortController, StreamKind>();
  private closed = false;
  private drained?: () => void;

  constructor(readonly limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1)) throw new Error(`stream limit must be an integer >= 1, got ${limit}`);
  }

  /**
   * Registers a stream answered by `res`; its signal aborts when the response closes (client gone, or
   * ended) or the daemon stops. Throws HttpError 503 when the limit is reached or the daemon is stopping.
   */
  register(kind: StreamKind, res: http.ServerResponse): AbortSignal {
    if (this.closed) throw new HttpError(503, 'the daemon is shutting down');
    if (this.open.size >= this.limit) throw new HttpError(503, `too many open streams (limit ${this.limit}); try again later`);
    const controller = new AbortController();
    this.open.set(controller, kind);
    const end = () => {
      controller.abort('closed');
      this.open.delete(controller);
      if (this.open.size === 0) this.drained?.();
    };
    res.on('close', end);
    return controller.signal;
  }

  count(kind: StreamKind): number {
    return [...this.open.values()].filter((k) => k === kind).length;
  }

  /**
   * Ends every stream and refuses new ones; resolves once all have closed, or after `graceMs` (their
   * connections are then cut by the caller).
   */
  async closeAll(graceMs = 2000): Promise<void> {
    this.closed = true;
    if (this.open.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<void>((resolve) => {
      this.drained = resolve;
      timer = setTimeout(resolve, graceMs);
    });
    for (const controller of this.open.keys()) controller.abort('shutdown');
    await drained;
    clearTimeout(timer);
  }
}
