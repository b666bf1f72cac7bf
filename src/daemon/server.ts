import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { runPaths } from '../sinks/run-dir';
import type { RunSummary } from '../sinks/summary';
import { serveRunMetrics } from './arrow-stream';
import { dashboardHtml, DASHBOARD_CSP } from './dashboard';
import { runDirOf, type DaemonHome } from './daemon-home';
import { serveRunEvents, type RunStreamContext } from './event-stream';
import { HttpError } from './http-error';
import { readJsonBody, sendError, sendJson } from './http-io';
import type { DaemonMetrics } from './prometheus';
import type { QueueStatus } from './queue-status';
import { isRunId, RUN_ID_HINT } from './run-id';
import { isTerminal, RunQueueError, type RunRecord } from './run-queue';
import type { DaemonPipeline } from './run-scheduler';
import { isInside, parseRunRequest } from './run-request';
import { runView } from './run-view';
import type { StudyIndex } from './study';
import { parseCurvesQuery, runCurves } from './study-curves';
import { bearerMatches } from './token';

/**
 * The daemon's HTTP API:
 *
 * ```
 * GET  /                         the dashboard page
 * GET  /metrics                  daemon health, Prometheus text format
 * GET  /queue                    the queue: runs by state, per worker (QueueStatus)
 * GET  /pipelines                the pipelines runs can name, with the config each implies
 * GET  /runs                     all runs (RunView), oldest first
 * POST /runs                     submit { pipeline, config }               (bearer token)
 * GET  /runs/:id                 one run, with its config and, once finished, its summary
 * POST /runs/:id/cancel          cancel a queued or running run            (bearer token)
 * GET  /runs/:id/metrics         the metric log as a live Arrow IPC stream
 * GET  /runs/:id/events          metric and mask rows as live Server-Sent Events
 * GET  /runs/:id/reliability.svg the finished run's reliability diagram
 * GET  /study                    every run of the queue and the runs folder, one compact row each (study.ts)
 * GET  /study/curves?runs=a,b    the curves, mask updates and reliability bins of those runs (study-curves.ts)
 * ```
 *
 * Paths are matched segment by segment on the raw request path (no dot-segment normalisation), and a
 * run id must match the run id pattern (400 otherwise) before anything is looked up; every file served
 * is a fixed name inside the run's directory. Mutating requests need `Authorization: Bearer <token>`,
 * checked before the request is looked at any further (401 otherwise).
 */
export interface ServerContext extends RunStreamContext {
  readonly home: DaemonHome;
  readonly token: string;
  readonly pipelines: Readonly<Record<string, DaemonPipeline>>;
  readonly dataRoots: readonly string[];
  /** Whether the server listens on loopback only: then only loopback Host headers are served. */
  readonly loopbackOnly: boolean;
  readonly metrics: DaemonMetrics;
  readonly queueStatus: () => Promise<QueueStatus>;
  readonly study: StudyIndex;
  readonly log: (line: string) => void;
}

interface Request {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  /** The run id of `/runs/:id/...` routes, validated. */
  readonly id: string;
}

interface Route {
  readonly method: 'GET' | 'POST';
  /** Path segments; `:id` is a run id. */
  readonly path: readonly string[];
  readonly auth?: boolean;
  readonly handle: (request: Request, context: ServerContext) => Promise<void>;
}

const ROUTES: readonly Route[] = [
  { method: 'GET', path: [], handle: async ({ res }) => sendDashboard(res) },
  {
    method: 'GET',
    path: ['metrics'],
    handle: async ({ res }, c) => {
      const text = await c.metrics.scrape();
      res.writeHead(200, { 'content-type': c.metrics.contentType, 'cache-control': 'no-store' });
      res.end(text);
    },
  },
  { method: 'GET', path: ['queue'], handle: async ({ res }, c) => sendJson(res, 200, await c.queueStatus()) },
  {
    method: 'GET',
    path: ['pipelines'],
    handle: async ({ res }, c) =>
      sendJson(res, 200, {
        pipelines: Object.entries(c.pipelines).map(([name, p]) => ({ name, description: p.description ?? '', defaults: p.defaults ?? {} })),
      }),
  },
  {
    method: 'GET',
    path: ['study'],
    handle: async ({ req, res }, c) => {
      if (new URL(req.url ?? '/', 'http://localhost').search !== '') throw new HttpError(400, 'GET /study takes no query parameters', [{ field: 'query', message: 'unexpected' }]);
      sendJson(res, 200, await c.study.list(), {}, { compact: true });
    },
  },
  {
    method: 'GET',
    path: ['study', 'curves'],
    handle: async ({ req, res }, c) => {
      const query = parseCurvesQuery(req.url ?? '/');
      const study = await c.study.list();
      const rows = new Map(study.runs.map((r) => [r.id, r]));
      const runs = [];
      for (const id of new Set(query.runs)) {
        const row = rows.get(id);
        if (!row) throw new HttpError(404, `no run ${id} in the study`, [{ field: 'runs', message: `${id}: no such run` }]);
        const dir = await c.study.dirOf(id);
        runs.push(dir === undefined ? { id, metrics: {}, mask: { layers: [], steps: [], pruned: [], grown: [], density: [] } } : runCurves(id, dir, query.points, row.headline));
      }
      sendJson(res, 200, { runs }, {}, { compact: true });
    },
  },
  {
    method: 'GET',
    path: ['runs'],
    handle: async ({ res }, c) => sendJson(res, 200, { runs: (await c.queue.list()).map((r) => runView(r, c.activity.get(r.id))) }),
  },
  {
    method: 'POST',
    path: ['runs'],
    auth: true,
    handle: async ({ req, res }, c) => {
      const request = parseRunRequest(await readJsonBody(req), { pipelines: c.pipelines, runsDir: c.home.runsDir, dataRoots: c.dataRoots });
      // A directory of that name that no run of the queue owns (made by hand or by `cigl train`) would be resumed as if it were this run's.
      const dir = runDirOf(c.home, request.id);
      if (fs.existsSync(dir) && !(await c.queue.get(request.id))) {
        throw new HttpError(409, `a run directory ${dir} exists already, though no run of this daemon's queue owns it; choose another output.runName, or move that directory away`, [
          { field: 'output.runName', message: 'its run directory exists' },
        ]);
      }
      let record: RunRecord;
      try {
        c.log(`run ${request.id} submitted (pipeline ${request.pipeline})`);
        record = await c.queue.submit(request);
      } catch (err) {
        if (err instanceof RunQueueError && err.reason === 'duplicate') {
          throw new HttpError(409, `a run named ${request.id} exists already; choose another output.runName`, [{ field: 'output.runName', message: 'is taken' }]);
        }
        throw err;
      }
      sendJson(res, 201, runView(record), { location: `/runs/${record.id}` });
    },
  },
  {
    method: 'GET',
    path: ['runs', ':id'],
    handle: async ({ res, id }, c) => {
      const record = await existing(c, id);
      sendJson(res, 200, { ...runView(record, c.activity.get(id)), config: record.config, summary: readSummary(c.home, id) });
    },
  },
  {
    method: 'POST',
    path: ['runs', ':id', 'cancel'],
    auth: true,
    handle: async ({ res, id }, c) => {
      const before = await existing(c, id);
      if (isTerminal(before.state)) throw new HttpError(409, `run ${id} has ${before.state === 'cancelled' ? 'been cancelled' : before.state} already`);
      const after = (await c.queue.cancel(id))!;
      c.log(`run ${id}: cancel requested (${after.state})`);
      sendJson(res, 202, runView(after));
    },
  },
  {
    method: 'GET',
    path: ['runs', ':id', 'metrics'],
    handle: async ({ res, id }, c) => {
      await existing(c, id);
      await serveRunMetrics(res, id, c);
    },
  },
  {
    method: 'GET',
    path: ['runs', ':id', 'events'],
    handle: async ({ req, res, id }, c) => {
      await existing(c, id);
      await serveRunEvents(req, res, id, c);
    },
  },
  {
    method: 'GET',
    path: ['runs', ':id', 'reliability.svg'],
    handle: async ({ res, id }, c) => {
      await existing(c, id);
      const svg = readRunFile(c.home, id, runPaths(runDirOf(c.home, id)).reliabilitySvg);
      if (svg === undefined) throw new HttpError(404, `run ${id} has no reliability diagram (yet)`);
      res.writeHead(200, { 'content-type': 'image/svg+xml', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'", 'cache-control': 'no-store' });
      res.end(svg);
    },
  },
];

export function createDaemonServer(context: ServerContext): http.Server {
  return http.createServer((req, res) => {
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    handle(req, res, context).catch((err: unknown) => {
      const known = err instanceof HttpError ? err : undefined;
      if (!known) context.log(`${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // A body refused part-way is not read to its end: close the connection rather than reuse it.
      const headers = known?.status === 413 || known?.status === 415 ? { connection: 'close' } : {};
      sendError(res, known ?? new HttpError(500, 'internal error (see the daemon log)'), headers);
    });
  });
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, context: ServerContext): Promise<void> {
  if (context.loopbackOnly && !isLoopbackHost(req.headers.host)) {
    throw new HttpError(421, `this daemon serves loopback clients only; Host ${JSON.stringify(req.headers.host ?? '')} is not a loopback name`);
  }
  const segments = pathSegments(req.url ?? '');
  const candidates = ROUTES.filter((r) => r.path.length === segments.length && r.path.every((p, i) => p === ':id' || p === segments[i]));
  if (candidates.length === 0) throw new HttpError(404, `no such resource: ${(req.url ?? '').split('?')[0]}`);
  const route = candidates.find((r) => r.method === req.method);
  if (!route) {
    res.setHeader('allow', candidates.map((r) => r.method).join(', '));
    throw new HttpError(405, `${req.method} is not allowed here (allowed: ${candidates.map((r) => r.method).join(', ')})`);
  }
  if (route.auth && !bearerMatches(req.headers.authorization, context.token)) {
    res.setHeader('www-authenticate', 'Bearer realm="cigl"');
    throw new HttpError(401, 'a valid bearer token is required (Authorization: Bearer <token>; the token is in the daemon home\'s token file)');
  }
  const at = route.path.indexOf(':id');
  const id = at < 0 ? '' : segments[at];
  if (at >= 0 && !isRunId(id)) throw new HttpError(400, `invalid run id ${JSON.stringify(id)}: expected ${RUN_ID_HINT}`, [{ field: 'id', message: 'invalid' }]);
  await route.handle({ req, res, id }, context);
}

/**
 * The path of a request target split into percent-decoded segments, without any normalisation: `..` or
 * an encoded `/` stays inside its segment, where the run id check rejects it.
 */
export function pathSegments(target: string): string[] {
  const raw = target.split(/[?#]/)[0];
  if (!raw.startsWith('/')) throw new HttpError(400, `the request target must be a path, got ${JSON.stringify(target.slice(0, 100))}`);
  const parts = raw.slice(1).split('/');
  if (parts.length === 1 && parts[0] === '') return [];
  return parts.map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new HttpError(400, `malformed percent-encoding in the path: ${JSON.stringify(part.slice(0, 100))}`);
    }
  });
}

function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0];
  return ['127.0.0.1', 'localhost', '[::1]'].includes(name.toLowerCase());
}

async function existing(context: ServerContext, id: string): Promise<RunRecord> {
  const record = await context.queue.get(id);
  if (!record) throw new HttpError(404, `no run ${id}`);
  return record;
}

function sendDashboard(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': DASHBOARD_CSP, 'cache-control': 'no-store' });
  res.end(dashboardHtml());
}

/** A file of a run directory, if present, refusing anything (e.g. a symlink) that resolves outside the runs folder. */
function readRunFile(home: DaemonHome, id: string, file: string): Buffer | undefined {
  if (path.dirname(file) !== runDirOf(home, id)) throw new Error(`${file} is not a file of run ${id}`);
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return undefined;
  }
  if (!isInside(real, fs.realpathSync(home.runsDir))) throw new HttpError(404, `run ${id} has no such file`);
  return fs.readFileSync(real);
}

function readSummary(home: DaemonHome, id: string): RunSummary | undefined {
  const bytes = readRunFile(home, id, runPaths(runDirOf(home, id)).summary);
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8')) as RunSummary;
  } catch {
    return undefined; // being written, or damaged: the run's files say more than this endpoint can
  }
}
