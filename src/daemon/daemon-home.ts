import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isRunId, RUN_ID_HINT } from './run-id';

/**
 * The daemon's home directory:
 *
 * ```
 * <home>/runs/<id>/    one run directory per run (the CLI's layout, see sinks/run-dir.ts)
 * <home>/queue.json    the embedded queue's state, replaced atomically on every change
 * <home>/token         the bearer token for mutating requests (mode 0600)
 * <home>/daemon.pid    held while a daemon serves this home (one daemon per home)
 * ```
 *
 * Daemons that share a queue (--queue redis://...) share their run directories instead: `runsDir` then
 * names one folder all of them mount at the same path (NFS or the like), so that whichever daemon
 * claims a run finds the checkpoints of the attempts before it. The rest of the home stays per daemon.
 */
export interface DaemonHome {
  readonly dir: string;
  readonly runsDir: string;
  readonly queueFile: string;
  readonly tokenFile: string;
  readonly pidFile: string;
}

export class DaemonHomeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonHomeError';
  }
}

/** `$CIGL_DAEMON_HOME`, else `~/.cigl/daemon`. */
export function defaultDaemonHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.CIGL_DAEMON_HOME || path.join(os.homedir(), '.cigl', 'daemon');
}

/** Creates the home and its runs folder (owner-only) if missing; `runsDir` replaces `<home>/runs`. */
export function openDaemonHome(dir: string, options: { runsDir?: string } = {}): DaemonHome {
  const home = path.resolve(dir);
  const runsDir = options.runsDir === undefined ? path.join(home, 'runs') : path.resolve(options.runsDir);
  try {
    fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new DaemonHomeError(`cannot create daemon home ${home}: ${(err as Error).message}`);
  }
  try {
    fs.mkdirSync(runsDir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new DaemonHomeError(`cannot create the runs folder ${runsDir}: ${(err as Error).message}`);
  }
  return {
    dir: home,
    runsDir,
    queueFile: path.join(home, 'queue.json'),
    tokenFile: path.join(home, 'token'),
    pidFile: path.join(home, 'daemon.pid'),
  };
}

/**
 * The directory of run `id`. The id must match the run id pattern (one safe path segment); the result is
 * checked once more to lie directly inside the runs folder, so no id can name a path outside it.
 */
export function runDirOf(home: DaemonHome, id: string): string {
  if (!isRunId(id)) throw new Error(`invalid run id ${JSON.stringify(id)}: expected ${RUN_ID_HINT}`);
  const dir = path.join(home.runsDir, id);
  if (path.dirname(dir) !== home.runsDir) throw new Error(`run id ${JSON.stringify(id)} leaves the runs folder`);
  return dir;
}

/** Homes locked by this process (a pid file naming our own pid is otherwise a reused pid: stale). */
const lockedHere = new Set<string>();

/**
 * Claims the home for this process: `daemon.pid` is created exclusively; a pid file left by a process
 * that no longer exists is taken over. Returns a release function.
 */
export function lockDaemonHome(home: DaemonHome): () => void {
  const refuse = (owner: number) => new DaemonHomeError(`another daemon (pid ${owner}) is serving ${home.dir}; stop it first, or use another --home`);
  if (lockedHere.has(home.dir)) throw refuse(process.pid);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(home.pidFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      lockedHere.add(home.dir);
      return () => {
        lockedHere.delete(home.dir);
        try {
          if (fs.readFileSync(home.pidFile, 'utf8').trim() === String(process.pid)) fs.rmSync(home.pidFile);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DaemonHomeError(`cannot write ${home.pidFile}: ${(err as Error).message}`);
      const owner = Number(fs.readFileSync(home.pidFile, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processExists(owner)) throw refuse(owner);
      fs.rmSync(home.pidFile, { force: true }); // stale: its process is gone
    }
  }
  throw new DaemonHomeError(`cannot claim ${home.pidFile}`);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
