/**
 * Where a job writes: text outputs for progress and messages, and the directory relative paths are
 * resolved against. The CLI passes the process's streams; the daemon passes per-run sinks; a library
 * user passes whatever suits (e.g. `{ stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() }`).
 */

/** A text sink. `isTTY` and `columns` decide between a progress bar and log lines. */
export interface TextOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface RunIo {
  readonly stdout: TextOutput;
  readonly stderr: TextOutput;
  /** Base for relative paths given by the caller (command line, request). */
  readonly cwd: string;
}
