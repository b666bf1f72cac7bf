import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A throw-away `redis-server` (the Debian package) on a free loopback port with its files in a temporary
 * directory, for the distributed-queue tests. With `persistent`, every write is appended and fsynced
 * (appendonly, appendfsync always), so that `restart()` brings the queue back as it was.
 */
export const REDIS_SERVER = process.env.CIGL_REDIS_SERVER ?? '/usr/bin/redis-server';

/** Why Redis tests cannot run here (the binary is missing), or undefined when they can. */
export function redisUnavailable(): string | undefined {
  if (fs.existsSync(REDIS_SERVER)) return undefined;
  const which = spawnSync('which', ['redis-server'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return undefined;
  return `redis-server not found at ${REDIS_SERVER} nor on PATH: install the Debian package redis-server (apt-get install redis-server) to run the distributed-queue tests`;
}

export interface TestRedis {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the server the hard way (as a lost machine), then starts it again on the same port and files. */
  restart(options?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(options: { persistent?: boolean } = {}): Promise<TestRedis> {
  const binary = fs.existsSync(REDIS_SERVER) ? REDIS_SERVER : 'redis-server';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-redis-'));
  const port = await freePort();
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    ...(options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    '--daemonize', 'no',
    '--loglevel', 'warning',
  ];
  let child = await launch(binary, args, port);
  const stopChild = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async restart({ downMs = 500 } = {}) {
      await stopChild('SIGKILL');
      await new Promise((r) => setTimeout(r, downMs));
      child = await launch(binary, args, port);
    },
    async stop() {
      await stopChild('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function launch(binary: string, args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const deadline = Date.now() + 20_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}) on port ${port}: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on port ${port} within 20 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.end(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
