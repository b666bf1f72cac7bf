import * as path from 'node:path';
import { defaultDaemonHome } from '../../daemon/daemon-home';
import { redactedUrl } from '../../daemon/redis-connection';
import { DEFAULT_ATTEMPTS, DEFAULT_LOCK_MS, DEFAULT_QUEUE_NAME, RedisRunQueue, type RedisRunQueueOptions } from '../../daemon/redis-run-queue';
import { isLoopback, LOOPBACK, startDaemon } from '../../daemon/daemon';
import { daemonPipelines } from '../../daemon/pipelines';
import { fixturesDir } from '../../util/paths';
import type { CommandSpec } from '../command';
import { UsageError } from '../usage-error';
import type { CliWiring } from '../wiring';
import { parseQueueUrl } from './values';

export { daemonPipelines, SELECTED_PIPELINE_RUNNER } from '../../daemon/pipelines';

/** `cigl daemon`: serve the HTTP API and dashboard, training queued runs until SIGINT/SIGTERM. */
export function daemonCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'daemon',
    summary: 'run the training daemon: HTTP API, run queue and live dashboard',
    usage: [
      'daemon [--home DIR] [--host ADDR] [--port N] [--concurrency N] [--data-root DIR ...]',
      'daemon --queue redis://HOST:PORT --runs-dir SHARED_DIR [--lock-duration MS] [--attempts N] [options above]',
    ],
    description:
      'Serves the dashboard and the API on http://ADDR:PORT/ and trains submitted runs one at a time (or\n' +
      '--concurrency at a time). Runs, the queue and the bearer token for POST requests live in the home\n' +
      'directory; queued runs stay queued across restarts and an interrupted run resumes from its newest\n' +
      'checkpoint. SIGINT/SIGTERM stops gracefully: the running job checkpoints and is queued again.\n' +
      'With --queue, the daemon is one worker of a queue shared on Redis (BullMQ): every daemon given the\n' +
      'same URL pulls runs from it, and --runs-dir names the run directories all of them share (the same\n' +
      'path on every machine, e.g. an NFS mount), so that a run whose daemon died is resumed by another\n' +
      'from its newest checkpoint once its lock expires (--lock-duration).',
    options: {
      home: { type: 'string', value: 'DIR', description: 'daemon home: runs/, queue.json, token (default $CIGL_DAEMON_HOME or ~/.cigl/daemon)' },
      host: { type: 'string', value: 'ADDR', description: `address to listen on (default ${LOOPBACK}; others expose the read API to the network)` },
      port: { type: 'string', value: 'N', description: 'port to listen on; 0 picks a free one (default 0)' },
      concurrency: { type: 'string', value: 'N', description: 'runs trained at the same time (default 1)' },
      'data-root': { type: 'string', multiple: true, value: 'DIR', description: `directory runs may read data from; repeatable (default ${fixturesDir})` },
      queue: { type: 'string', value: 'URL', description: 'redis://HOST:PORT: pull runs from a queue shared by several daemons (default: this daemon\'s own queue)' },
      'queue-name': { type: 'string', value: 'NAME', description: `with --queue: the queue's name (default ${DEFAULT_QUEUE_NAME})` },
      'runs-dir': { type: 'string', value: 'DIR', description: 'run directories (default HOME/runs); with --queue, a folder every daemon mounts at the same path' },
      'lock-duration': { type: 'string', value: 'MS', description: `with --queue: how long a dead daemon's run stays claimed before another resumes it (default ${DEFAULT_LOCK_MS})` },
      attempts: { type: 'string', value: 'N', description: `with --queue: attempts of a failing run submitted here before it is marked failed (default ${DEFAULT_ATTEMPTS})` },
    },
    epilog:
      'API (POST needs Authorization: Bearer $(cat HOME/token)):\n' +
      '  POST /runs {"pipeline":"cigl|rigl|dense|train","config":{...}}   GET /runs   GET /runs/ID\n' +
      '  POST /runs/ID/cancel   GET /pipelines\n' +
      '  GET /runs/ID/events (SSE)   GET /runs/ID/metrics (Arrow IPC stream)   GET /metrics (Prometheus)\n' +
      'Example:\n  cigl daemon --port 8080\n' +
      '  curl -H "Authorization: Bearer $(cat ~/.cigl/daemon/token)" -H content-type:application/json \\\n' +
      '       -d \'{"pipeline":"cigl","config":{"train":{"epochs":2}}}\' http://127.0.0.1:8080/runs\n' +
      'Scaling out (one daemon per machine, a sweep queued from anywhere):\n' +
      '  cigl daemon --queue redis://queue-host:6379 --runs-dir /mnt/shared/runs\n' +
      '  cigl sweep --preset repro-overfit --queue redis://queue-host:6379 --wait',
    async run(args, io) {
      const host = (args.values.host as string | undefined) ?? LOOPBACK;
      const port = integerFlag(args.values.port, 'port', 0, 0, 65535);
      const concurrency = integerFlag(args.values.concurrency, 'concurrency', 1, 1, 64);
      const home = path.resolve(io.cwd, (args.values.home as string | undefined) ?? defaultDaemonHome());
      const dataRoots = ((args.values['data-root'] as string[] | undefined) ?? [fixturesDir]).map((d) => path.resolve(io.cwd, d));
      const runsDir = args.values['runs-dir'] === undefined ? undefined : path.resolve(io.cwd, args.values['runs-dir'] as string);
      const shared = sharedQueueOptions(args.values);
      const stop = wiring.gracefulStop();
      try {
        const daemon = await startDaemon({
          home,
          host,
          port,
          concurrency,
          dataRoots,
          runsDir,
          ...(shared ? { queue: () => RedisRunQueue.open(shared), queueName: redactedUrl(shared.url) } : {}),
          pipelines: daemonPipelines(),
          log: (line) => io.stderr.write(`cigl daemon: ${line}\n`),
        });
        if (!isLoopback(host)) io.stderr.write(`cigl daemon: warning: listening on ${host}: anyone who can reach it can read runs and metrics\n`);
        io.stdout.write(`cigl daemon listening on ${daemon.url}/\n`);
        io.stderr.write(`cigl daemon: home ${daemon.home.dir}; bearer token in ${daemon.home.tokenFile}\n`);
        if (shared) io.stderr.write(`cigl daemon: worker of the queue ${shared.name} on ${redactedUrl(shared.url)}; runs in ${daemon.home.runsDir}\n`);
        await new Promise<void>((resolve) => {
          if (stop.signal.aborted) resolve();
          stop.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        io.stderr.write('cigl daemon: stopping (running jobs checkpoint and stay queued)\n');
        await daemon.shutdown();
        io.stderr.write('cigl daemon: stopped\n');
        return 0;
      } finally {
        stop.dispose();
      }
    },
  };
}

/** The Redis queue options of --queue and its companions; undefined without --queue. */
function sharedQueueOptions(values: Record<string, unknown>): RedisRunQueueOptions | undefined {
  if (values.queue === undefined) {
    for (const flag of ['queue-name', 'lock-duration', 'attempts']) if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --queue`);
    return undefined;
  }
  return {
    url: parseQueueUrl(values.queue as string, '--queue'),
    name: (values['queue-name'] as string | undefined) ?? DEFAULT_QUEUE_NAME,
    lockDurationMs: integerFlag(values['lock-duration'], 'lock-duration', DEFAULT_LOCK_MS, 100, 3_600_000),
    attempts: integerFlag(values.attempts, 'attempts', DEFAULT_ATTEMPTS, 1, 1000),
  };
}

function integerFlag(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return n;
}
