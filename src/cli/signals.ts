import { Observable, ReplaySubject } from 'rxjs';
import { exitCodeAfter } from './exit-codes';

/**
 * Graceful stop for long runs: the first SIGINT/SIGTERM only *requests* a stop (the training loop sees
 * `signal.aborted` after its current step, checkpoints and exits with 130 or 143, see exit-codes.ts); a
 * second one exits at once with that signal's status, for when the graceful path hangs.
 */
export interface GracefulStop {
  /** Aborted on the first signal; `signal.reason` is the signal name. */
  readonly signal: AbortSignal;
  /** Emits the signal name once, on the first signal, then completes. Replays to late subscribers. */
  readonly requested$: Observable<NodeJS.Signals>;
  /** Removes the handlers (the process then reacts to signals as by default). */
  dispose(): void;
}

export interface GracefulStopOptions {
  /** Default SIGINT and SIGTERM. */
  readonly signals?: readonly NodeJS.Signals[];
  /** Where the signals come from; default `process`. */
  readonly target?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
  /** How to exit on the second signal; default process.exit. */
  readonly exit?: (code: number) => void;
  /** Where to tell the user what happens; default stderr. */
  readonly log?: (message: string) => void;
}

export function installGracefulStop(options: GracefulStopOptions = {}): GracefulStop {
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const target = options.target ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const log = options.log ?? ((message: string) => process.stderr.write(`${message}\n`));
  const controller = new AbortController();
  const requested = new ReplaySubject<NodeJS.Signals>(1);

  const onSignal = (name: NodeJS.Signals) => {
    if (!controller.signal.aborted) {
      log(`${name}: stopping after the current step (checkpoint, then exit); send it again to exit at once`);
      controller.abort(name);
      requested.next(name);
      requested.complete();
      return;
    }
    log(`${name} again: exiting now without a checkpoint`);
    exit(exitCodeAfter(name));
  };
  const handlers = signals.map((name) => {
    const handler = () => onSignal(name);
    target.on(name, handler);
    return [name, handler] as const;
  });
  return {
    signal: controller.signal,
    requested$: requested.asObservable(),
    dispose() {
      for (const [name, handler] of handlers) target.off(name, handler);
    },
  };
}
