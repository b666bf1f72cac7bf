import { spawn, type ChildProcess } from 'node:child_process';

/** A node child process whose stdout lines can be awaited (for kill -9 and signal tests). */
export interface Child {
  readonly process: ChildProcess;
  /** Resolves with the first stdout line (seen so far or later) for which `match` is true. */
  waitForLine(match: (line: string) => boolean): Promise<string>;
  /** Resolves with the exit code (or 128 + signal number style: the signal name) once it exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export function spawnNode(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  const lines: string[] = [];
  let waiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  let partial = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      waiters = waiters.filter((w) => (w.match(line) ? (w.resolve(line), false) : true));
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return {
    process: child,
    exited,
    waitForLine(match) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        void exited.then((r) => reject(new Error(`child exited (${r.code ?? r.signal}) before the expected line; stderr:\n${r.stderr}`)));
      });
    },
  };
}
