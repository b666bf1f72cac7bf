import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { QueueStatus } from './queue-status';
import type { RunState } from './run-queue';

/**
 * `GET /metrics`: the daemon's health in the Prometheus text format, through prom-client: the queue and
 * training gauges below, read afresh at every scrape, and prom-client's default metrics of the daemon
 * process itself (event-loop lag and its percentiles, CPU, resident memory, heap, GC, handles), which
 * show whether the daemon stays responsive while its runs train.
 */
export interface DaemonHealth {
  readonly runs: Readonly<Record<RunState, number>>;
  /** The queue with its workers (with a shared queue: every daemon's). */
  readonly queue?: QueueStatus;
  /** Runs training in this daemon, with their latest step and throughput. */
  readonly training: readonly { readonly id: string; readonly step: number; readonly imagesPerSecond: number }[];
  /** Tensors alive in the runs' trainer threads (tf.memory() each reported after its latest step), and their bytes. */
  readonly tensors: number;
  readonly tensorBytes: number;
  readonly streams: { readonly events: number; readonly arrow: number };
  readonly uptimeSeconds: number;
}

/** How long one collection answers later scrapes. */
export const SCRAPE_REUSE_MS = 250;

type Sample = { readonly labels?: Readonly<Record<string, string>>; readonly value: number };

export class DaemonMetrics {
  private readonly registry = new Registry();
  /** The health the gauges report: read once per scrape, before the registry collects. */
  private health?: DaemonHealth;
  private latest?: { readonly at: number; readonly text: Promise<string> };

  constructor(private readonly readHealth: () => Promise<DaemonHealth>) {
    collectDefaultMetrics({ register: this.registry });
    const gauge = (name: string, help: string, labelNames: readonly string[], samples: (h: DaemonHealth) => readonly Sample[]) => {
      const metrics = this;
      new Gauge({
        name,
        help,
        labelNames,
        registers: [this.registry],
        collect() {
          this.reset();
          if (!metrics.health) return;
          for (const s of samples(metrics.health)) {
            if (s.labels) this.set(s.labels, s.value);
            else this.set(s.value);
          }
        },
      });
    };
    gauge('cigl_queue_depth', 'Runs waiting in the queue.', [], (h) => [{ value: h.runs.queued }]);
    gauge('cigl_runs_running', 'Runs training now (in any daemon of the queue).', [], (h) => [{ value: h.runs.running }]);
    gauge('cigl_runs', 'Runs by state.', ['state'], (h) => Object.entries(h.runs).map(([state, value]) => ({ labels: { state }, value })));
    gauge('cigl_queue_info', 'The queue this daemon pulls from ("embedded" or its Redis URL) and its worker name.', ['queue', 'worker'], (h) =>
      h.queue ? [{ labels: { queue: h.queue.queue, worker: h.queue.worker }, value: 1 }] : [],
    );
    gauge('cigl_worker_runs', 'Runs by worker (daemon) and state: running now, and finished by that worker.', ['worker', 'state'], (h) =>
      (h.queue?.workers ?? []).flatMap((w) => Object.entries(w.runs).map(([state, value]) => ({ labels: { worker: w.worker, state }, value }))),
    );
    gauge('cigl_images_per_second', 'Training throughput of this daemon, all runs together.', [], (h) => [{ value: h.training.reduce((s, r) => s + r.imagesPerSecond, 0) }]);
    gauge('cigl_run_images_per_second', 'Training throughput per run.', ['run'], (h) => h.training.map((r) => ({ labels: { run: r.id }, value: r.imagesPerSecond })));
    gauge('cigl_run_step', 'Latest optimisation step per training run.', ['run'], (h) => h.training.map((r) => ({ labels: { run: r.id }, value: r.step })));
    gauge('cigl_tfjs_tensors', 'Tensors alive in the trainer threads of the runs training here (tf.memory().numTensors).', [], (h) => [{ value: h.tensors }]);
    gauge('cigl_tfjs_bytes', 'Bytes held by those tensors (tf.memory().numBytes).', [], (h) => [{ value: h.tensorBytes }]);
    gauge('cigl_stream_clients', 'Open live streams by kind.', ['kind'], (h) => [
      { labels: { kind: 'events' }, value: h.streams.events },
      { labels: { kind: 'arrow' }, value: h.streams.arrow },
    ]);
    gauge('cigl_daemon_uptime_seconds', 'Seconds since the daemon started.', [], (h) => [{ value: h.uptimeSeconds }]);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The exposition text, collected at most once per SCRAPE_REUSE_MS: a crowd of clients asking at once
   * costs the event loop one collection (a millisecond or more: the default metrics read /proc), not one
   * each; a scraper polling every few seconds sees no difference. The registry collects synchronously
   * once started, so every gauge reads the same health.
   */
  scrape(): Promise<string> {
    const now = Date.now();
    if (this.latest && now - this.latest.at < SCRAPE_REUSE_MS) return this.latest.text;
    const text = (async () => {
      this.health = await this.readHealth();
      return this.registry.metrics();
    })();
    this.latest = { at: now, text };
    text.catch(() => (this.latest = undefined)); // the caller sees the error; the next scrape tries again
    return text;
  }
}
