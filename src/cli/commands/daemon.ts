import * as path from 'node:path';
import { defaultDaemonHome } from '../../daemon/daemon-home';
import { isLoopback, LOOPBACK, startDaemon } from '../../daemon/daemon';
import type { DaemonPipeline } from '../../daemon/run-scheduler';
import { PIPELINES } from '../../../pipelines';
import { fixturesDir } from '../../util/paths';
import type { CommandSpec } from '../command';
import { UsageError } from '../usage-error';
import type { CliWiring } from '../wiring';

/**
 * The pipelines a daemon offers, by the name `POST /runs` gives: `train` runs what the config selects
 * (exactly as `cigl train`), and each of pipelines/ (cigl, rigl, dense) the same with its defaults
 * merged under the submitted config, so that it selects that composition.
 */
export function daemonPipelines(wiring: CliWiring): Record<string, DaemonPipeline> {
  return {
    train: { train: wiring.train, description: 'the composition the config selects, as cigl train runs it' },
    ...Object.fromEntries(Object.values(PIPELINES).map((p) => [p.name, { train: wiring.train, defaults: p.defaults, description: p.description }])),
  };
}

/** `cigl daemon`: serve the HTTP API and dashboard, training queued runs until SIGINT/SIGTERM. */
export function daemonCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'daemon',
    summary: 'run the training daemon: HTTP API, run queue and live dashboard',
    usage: ['daemon [--home DIR] [--host ADDR] [--port N] [--concurrency N] [--data-root DIR ...]'],
    description:
      'Serves the dashboard and the API on http://ADDR:PORT/ and trains submitted runs one at a time (or\n' +
      '--concurrency at a time). Runs, the queue and the bearer token for POST requests live in the home\n' +
      'directory; queued runs stay queued across restarts and an interrupted run resumes from its newest\n' +
      'checkpoint. SIGINT/SIGTERM stops gracefully: the running job checkpoints and is queued again.',
    options: {
      home: { type: 'string', value: 'DIR', description: 'daemon home: runs/, queue.json, token (default $CIGL_DAEMON_HOME or ~/.cigl/daemon)' },
      host: { type: 'string', value: 'ADDR', description: `address to listen on (default ${LOOPBACK}; others expose the read API to the network)` },
      port: { type: 'string', value: 'N', description: 'port to listen on; 0 picks a free one (default 0)' },
      concurrency: { type: 'string', value: 'N', description: 'runs trained at the same time (default 1)' },
      'data-root': { type: 'string', multiple: true, value: 'DIR', description: `directory runs may read data from; repeatable (default ${fixturesDir})` },
    },
    epilog:
      'API (POST needs Authorization: Bearer $(cat HOME/token)):\n' +
      '  POST /runs {"pipeline":"cigl|rigl|dense|train","config":{...}}   GET /runs   GET /runs/ID\n' +
      '  POST /runs/ID/cancel   GET /pipelines\n' +
      '  GET /runs/ID/events (SSE)   GET /runs/ID/metrics (Arrow IPC stream)   GET /metrics (Prometheus)\n' +
      'Example:\n  cigl daemon --port 8080\n' +
      '  curl -H "Authorization: Bearer $(cat ~/.cigl/daemon/token)" -H content-type:application/json \\\n' +
      '       -d \'{"pipeline":"cigl","config":{"train":{"epochs":2}}}\' http://127.0.0.1:8080/runs',
    async run(args, io) {
      const host = (args.values.host as string | undefined) ?? LOOPBACK;
      const port = integerFlag(args.values.port, 'port', 0, 0, 65535);
      const concurrency = integerFlag(args.values.concurrency, 'concurrency', 1, 1, 64);
      const home = path.resolve(io.cwd, (args.values.home as string | undefined) ?? defaultDaemonHome());
      const dataRoots = ((args.values['data-root'] as string[] | undefined) ?? [fixturesDir]).map((d) => path.resolve(io.cwd, d));
      const stop = wiring.gracefulStop();
      try {
        const daemon = await startDaemon({
          home,
          host,
          port,
          concurrency,
          dataRoots,
          pipelines: daemonPipelines(wiring),
          log: (line) => io.stderr.write(`cigl daemon: ${line}\n`),
        });
        if (!isLoopback(host)) io.stderr.write(`cigl daemon: warning: listening on ${host}: anyone who can reach it can read runs and metrics\n`);
        io.stdout.write(`cigl daemon listening on ${daemon.url}/\n`);
        io.stderr.write(`cigl daemon: home ${daemon.home.dir}; bearer token in ${daemon.home.tokenFile}\n`);
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

function integerFlag(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return n;
}
