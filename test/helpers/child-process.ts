import { spawn, type ChildProcess } from 'node:child_process';

/** A node child process whose stdout lines can be awaited (for kill -9 and signal tests). */
export interface Child {
  readonly process: ChildProcess;
  /** Resolves with the first line of stdout (or stderr) seen so far or later for which `match` is true. */
  waitForLine(match: (line: string) => boolean, stream?: 'stdout' | 'stderr'): Promise<string>;
  /** Resolves with the exit code (or 128 + signal number style: the signal name) once it exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

export function spawnNode(script: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const text = { stdout: '', stderr: '' };
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  let waiters: { stream: 'stdout' | 'stderr'; match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  for (const stream of ['stdout', 'stderr'] as const) {
    let partial = '';
    child[stream]!.setEncoding('utf8').on('data', (chunk: string) => {
      text[stream] += chunk;
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        lines[stream].push(line);
        waiters = waiters.filter((w) => (w.stream === stream && w.match(line) ? (w.resolve(line), false) : true));
      }
    });
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout: text.stdout, stderr: text.stderr })),
  );
  return {
    process: child,
    exited,
    waitForLine(match, stream = 'stdout') {
      const seen = lines[stream].find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ stream, match, resolve });
        void exited.then((r) => reject(new Error(`child exited (${r.code ?? r.signal}) before the expected line; stderr:\n${r.stderr}`)));
      });
    },
  };
}
