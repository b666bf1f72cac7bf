import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import { fixturesDir } from '../util/paths';
import { lockDaemonHome, openDaemonHome, type DaemonHome } from './daemon-home';
import { EmbeddedRunQueue } from './embedded-run-queue';
import { DaemonMetrics } from './prometheus';
import { RunActivity } from './run-activity';
import { queueStatus } from './queue-status';
import type { RunQueue } from './run-queue';
import { RunScheduler, type DaemonPipeline } from './run-scheduler';
import { createDaemonServer } from './server';
import { SharedLogRows } from './shared-log-rows';
import { StreamRegistry } from './stream-registry';
import { StudyIndex } from './study';
import { loadOrCreateToken } from './token';

/**
 * A training daemon: the HTTP API (server.ts) over a run queue (RunQueue), a scheduler that trains
 * queued runs with the CLI's pipelines, and the home directory that holds runs, queue and token.
 * `startDaemon` brings it up; `shutdown` stops it gracefully: no new requests, running jobs stopped at
 * a checkpoint and put back in the queue, live streams ended, the queue closed.
 */
export interface DaemonOptions {
  /** The home directory (created if missing). */
  readonly home: string;
  /** Address to listen on; default 127.0.0.1 (loopback only). */
  readonly host?: string;
  /** Port; 0 (default) picks a free one. */
  readonly port?: number;
  /** Pipelines by name, as `POST /runs` names them. */
  readonly pipelines: Readonly<Record<string, DaemonPipeline>>;
  /** Runs trained at the same time; default 1. */
  readonly concurrency?: number;
  /** Directories runs may read data from; default the repository's fixtures. */
  readonly dataRoots?: readonly string[];
  /** The queue; default the embedded queue in `<home>/queue.json`. */
  readonly queue?: (home: DaemonHome) => RunQueue | Promise<RunQueue>;
  /** How the queue is named in the status ('embedded', or a shared queue's URL); default 'embedded'. */
  readonly queueName?: string;
  /** Run directories; default `<home>/runs`. Daemons sharing a queue share one (see daemon-home.ts). */
  readonly runsDir?: string;
  /** This daemon's worker name in the queue; default host:pid. */
  readonly worker?: string;
  /** How often live streams look for new rows; default 250 ms. */
  readonly pollMs?: number;
  /** Open live streams at most; default 1000. */
  readonly maxStreams?: number;
  /** Daemon log lines; default stderr. */
  readonly log?: (line: string) => void;
}

export interface Daemon {
  /** `http://host:port` (no trailing slash). */
  readonly url: string;
  readonly home: DaemonHome;
  readonly token: string;
  readonly queue: RunQueue;
  /** Stops gracefully (idempotent); resolves when everything is closed. */
  shutdown(): Promise<void>;
}

export const LOOPBACK = '127.0.0.1';
/**
 * Connections the kernel queues before the daemon accepts them (capped by net.core.somaxconn): room for
 * a crowd of clients arriving at once (a dashboard wall reconnecting) to reach the daemon and be
 * answered, with a stream or a 503 beyond the stream limit, instead of being reset by the kernel.
 */
const LISTEN_BACKLOG = 4096;

export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const host = options.host ?? LOOPBACK;
  const log = options.log ?? ((line: string) => process.stderr.write(`cigl daemon: ${line}\n`));
  const home = openDaemonHome(options.home, { runsDir: options.runsDir });
  const worker = options.worker ?? `${os.hostname()}:${process.pid}`;
  const unlock = lockDaemonHome(home);
  const startedAt = Date.now();
  let queue: RunQueue | undefined;
  try {
    const token = loadOrCreateToken(home.tokenFile);
    queue = await (options.queue ?? ((h: DaemonHome) => EmbeddedRunQueue.open(h.queueFile)))(home);
    const activity = new RunActivity();
    const streams = new StreamRegistry(options.maxStreams ?? 1000);
    const scheduler = new RunScheduler({
      queue,
      home,
      pipelines: options.pipelines,
      concurrency: options.concurrency,
      worker,
      activity,
      dataRoots: options.dataRoots ?? [fixturesDir],
      log,
    });
    const runQueue = queue;
    const status = async () => queueStatus(options.queueName ?? 'embedded', worker, await runQueue.list());
    const metrics = new DaemonMetrics(async () => {
      const queueNow = await status();
      const training = activity.entries();
      return {
        runs: queueNow.runs,
        queue: queueNow,
        training: training.map(([id, s]) => ({ id, step: s.step, imagesPerSecond: s.imagesPerSecond })),
        tensors: training.reduce((n, [, s]) => n + (s.tensors ?? 0), 0),
        tensorBytes: training.reduce((n, [, s]) => n + (s.tensorBytes ?? 0), 0),
        streams: { events: streams.count('events'), arrow: streams.count('arrow') },
        uptimeSeconds: (Date.now() - startedAt) / 1000,
      };
    });
    const server = createDaemonServer({
      queue,
      home,
      token,
      streams,
      activity,
      rows: new SharedLogRows(),
      study: new StudyIndex(home, queue, (id) => activity.get(id)),
      pollMs: options.pollMs ?? 250,
      pipelines: options.pipelines,
      dataRoots: options.dataRoots ?? [fixturesDir],
      loopbackOnly: isLoopback(host),
      metrics,
      queueStatus: status,
      log,
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: options.port ?? 0, host, backlog: LISTEN_BACKLOG }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    scheduler.start();

    let stopped: Promise<void> | undefined;
    const shutdown = () =>
      (stopped ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await scheduler.stop();
        await streams.closeAll();
        await runQueue.close();
        server.closeAllConnections();
        await closed;
        unlock();
      })());
    return { url, home, token, queue, shutdown };
  } catch (err) {
    await queue?.close();
    unlock();
    throw err;
  }
}

export function isLoopback(host: string): boolean {
  return host === LOOPBACK || host === 'localhost' || host === '::1' || /^127\./.test(host);
}
