import * as os from 'node:os';

/**
 * What `cigl` exits with, as shells and schedulers read it:
 *
 * ```
 *   0  finished (for the daemon: stopped gracefully)
 *   1  failed while running (including a diverged run)
 *   2  usage or config error: nothing was started
 * 130  stopped by Ctrl-C (SIGINT), after writing a checkpoint: continue with --resume
 * 143  stopped by SIGTERM, after writing a checkpoint
 * ```
 */
export const EXIT_FINISHED = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** 128 + the signal's number, as a shell reports a process ended by that signal (SIGINT 130, SIGTERM 143). */
export function exitCodeAfter(signal: NodeJS.Signals): number {
  return 128 + os.constants.signals[signal];
}

/**
 * The exit status of a run stopped gracefully by its stop signal: that of the signal which asked for
 * the stop (its AbortSignal's reason), or SIGINT's when the reason is no signal name.
 */
export function exitCodeOfStop(reason: unknown): number {
  const signal = typeof reason === 'string' && reason in os.constants.signals ? (reason as NodeJS.Signals) : 'SIGINT';
  return exitCodeAfter(signal);
}
