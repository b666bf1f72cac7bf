import { once } from 'node:events';
import type * as http from 'node:http';
import { METRICS_LOG, metricsSpec } from '../sinks/arrow-log';
import { schemaMessage } from '../sinks/arrow-table';
import { runDirOf } from './daemon-home';
import type { RunStreamContext } from './event-stream';
import { followRun } from './follow-run';
import { ArrowLogTail } from './log-tail';

/**
 * `GET /runs/:id/metrics`: the run's metric log as one Arrow IPC stream, live. The schema goes out at
 * once; then every record batch of every log segment, byte for byte, as the job flushes them; the
 * end-of-stream marker when the run has ended (or the daemon stops). Rows are the log's, in its order:
 * a resumed run repeats the steps after its checkpoint, and readers keep the last row per key, as
 * readArrowLog does.
 */
export const ARROW_STREAM_TYPE = 'application/vnd.apache.arrow.stream';
const END_OF_STREAM = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

export async function serveRunMetrics(res: http.ServerResponse, id: string, context: RunStreamContext): Promise<void> {
  const signal = context.streams.register('arrow', res);
  const tail = new ArrowLogTail(runDirOf(context.home, id), METRICS_LOG);
  const schema = schemaMessage(metricsSpec);
  res.writeHead(200, { 'content-type': ARROW_STREAM_TYPE, 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  const write = async (bytes: Uint8Array) => {
    if (!res.write(bytes)) await once(res, 'drain', { signal }).catch(() => undefined);
  };
  try {
    await write(schema);
    await followRun(id, { queue: context.queue, pollMs: context.pollMs, signal }, async () => {
      const messages = tail.readMessages();
      if (tail.schemaMessage && Buffer.compare(tail.schemaMessage, schema) !== 0) {
        throw new Error(`${tail.dir}: the metric log's schema is not the one this daemon serves`);
      }
      for (const message of messages) if (!signal.aborted) await write(message);
    });
    res.end(END_OF_STREAM);
  } catch {
    res.destroy(); // a broken connection, so that the reader sees an error rather than a clean end
  }
}
