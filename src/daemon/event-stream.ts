import { once } from 'node:events';
import type * as http from 'node:http';
import { MASK_STATS_LOG, maskStatsSpec, METRICS_LOG, metricsSpec } from '../sinks/arrow-log';
import { runDirOf, type DaemonHome } from './daemon-home';
import { followRun } from './follow-run';
import { HttpError } from './http-error';
import type { RunActivity } from './run-activity';
import { isTerminal, type RunQueue, type RunRecord } from './run-queue';
import { runView } from './run-view';
import type { SharedLogRows } from './shared-log-rows';
import type { StreamRegistry } from './stream-registry';

/**
 * `GET /runs/:id/events`: the run's metric and mask-statistics rows as Server-Sent Events, live.
 *
 * ```
 * event: status      data: the run (RunView), at the start and whenever its state changes
 * event: metrics     data: [MetricRow, ...]    id: <metric rows sent>:<mask rows sent>
 * event: mask-stats  data: [MaskStatRow, ...]  id: (same form)
 * event: end         data: the finished run; the stream then closes
 * ```
 *
 * Every data event carries, as its id, how many rows of each log the client has received. A client that
 * reconnects sends it back as `Last-Event-ID` (browsers' EventSource do so by themselves) and gets
 * exactly the rows it missed: the logs only grow at their end, so row positions never change. When the
 * daemon stops, the stream closes without `end`, so clients reconnect to the restarted daemon.
 */
export interface RunStreamContext {
  readonly queue: RunQueue;
  readonly home: DaemonHome;
  readonly streams: StreamRegistry;
  readonly activity: RunActivity;
  readonly rows: SharedLogRows;
  readonly pollMs: number;
}

export interface EventCursor {
  readonly metrics: number;
  readonly maskStats: number;
}

/** Rows per event, so that a long replay is sent in pieces. */
const MAX_ROWS_PER_EVENT = 2000;
/** A comment line this often keeps idle connections (and proxies) open. */
const KEEP_ALIVE_MS = 15_000;

/** `Last-Event-ID` → rows already received; absent means none. */
export function parseEventCursor(text: string | undefined): EventCursor {
  if (text === undefined || text === '') return { metrics: 0, maskStats: 0 };
  const m = /^(\d{1,15}):(\d{1,15})$/.exec(text.trim());
  if (!m) throw new HttpError(400, `Last-Event-ID must be <metric rows>:<mask rows> as sent in event ids, got ${JSON.stringify(text)}`, [{ field: 'Last-Event-ID', message: 'malformed' }]);
  return { metrics: Number(m[1]), maskStats: Number(m[2]) };
}

export async function serveRunEvents(req: http.IncomingMessage, res: http.ServerResponse, id: string, context: RunStreamContext): Promise<void> {
  const cursor = parseEventCursor(headerValue(req.headers['last-event-id']));
  const signal = context.streams.register('events', res);
  const dir = runDirOf(context.home, id);
  // Rows sent so far of each log: the event id, and where a reconnecting client resumes.
  const sent = { metrics: cursor.metrics, 'mask-stats': cursor.maskStats };
  const logs = [
    { event: 'metrics' as const, rows: context.rows.acquire(dir, METRICS_LOG, metricsSpec) },
    { event: 'mask-stats' as const, rows: context.rows.acquire(dir, MASK_STATS_LOG, maskStatsSpec) },
  ];
  let lastStatus = '';
  let lastWrite = Date.now();
  const write = async (text: string) => {
    lastWrite = Date.now();
    if (!res.write(text)) await once(res, 'drain', { signal }).catch(() => undefined);
  };

  const update = async (record: RunRecord) => {
    const key = statusKey(record);
    if (key !== lastStatus) {
      lastStatus = key;
      await write(`event: status\ndata: ${JSON.stringify(runView(record, context.activity.get(id)))}\n\n`);
    }
    for (const log of logs) {
      const fresh = log.rows.from(sent[log.event]);
      for (let i = 0; i < fresh.length && !signal.aborted; i += MAX_ROWS_PER_EVENT) {
        const chunk = fresh.slice(i, i + MAX_ROWS_PER_EVENT);
        sent[log.event] += chunk.length;
        await write(`event: ${log.event}\nid: ${sent.metrics}:${sent['mask-stats']}\ndata: [${chunk.join(',')}]\n\n`);
      }
    }
    if (Date.now() - lastWrite > KEEP_ALIVE_MS) await write(': keep-alive\n\n');
  };

  try {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    await write('retry: 2000\n\n');
    const last = await followRun(id, { queue: context.queue, pollMs: context.pollMs, signal }, update);
    if (last && isTerminal(last.state) && !signal.aborted) await write(`event: end\ndata: ${JSON.stringify(runView(last))}\n\n`);
  } catch (err) {
    if (!signal.aborted) await write(`event: error\ndata: ${JSON.stringify({ error: (err as Error).message })}\n\n`);
  } finally {
    for (const log of logs) log.rows.release();
    res.end();
  }
}

/** The fields whose change is worth a status event (not the step, which changes all the time). */
function statusKey(r: RunRecord): string {
  return JSON.stringify([r.state, r.attempts, r.interrupted, r.cancelRequested, r.error]);
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
