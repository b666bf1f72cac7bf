import type { QueueStatus } from './queue-status';
import type { RunState } from './run-queue';

/**
 * `GET /metrics`: the daemon's health in the Prometheus text exposition format (version 0.0.4).
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface DaemonHealth {
  readonly runs: Readonly<Record<RunState, number>>;
  /** The queue with its workers (with a shared queue: every daemon's). */
  readonly queue?: QueueStatus;
  /** Runs training in this daemon, with their latest step and throughput. */
  readonly training: readonly { readonly id: string; readonly step: number; readonly imagesPerSecond: number }[];
  /** tf.memory(): tensors alive and their bytes. */
  readonly tensors: number;
  readonly tensorBytes: number;
  readonly memory: NodeJS.MemoryUsage;
  readonly streams: { readonly events: number; readonly arrow: number };
  readonly uptimeSeconds: number;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly samples: readonly { readonly labels?: Readonly<Record<string, string>>; readonly value: number }[];
}

export function formatPrometheus(h: DaemonHealth): string {
  const gauge = (name: string, help: string, samples: Family['samples']): Family => ({ name, help, type: 'gauge', samples });
  const families: Family[] = [
    gauge('cigl_queue_depth', 'Runs waiting in the queue.', [{ value: h.runs.queued }]),
    gauge('cigl_runs_running', 'Runs training now (in any daemon of the queue).', [{ value: h.runs.running }]),
    gauge('cigl_runs', 'Runs by state.', Object.entries(h.runs).map(([state, value]) => ({ labels: { state }, value }))),
    gauge('cigl_queue_info', 'The queue this daemon pulls from ("embedded" or its Redis URL) and its worker name.', h.queue ? [{ labels: { queue: h.queue.queue, worker: h.queue.worker }, value: 1 }] : []),
    gauge(
      'cigl_worker_runs',
      'Runs by worker (daemon) and state: running now, and finished by that worker.',
      (h.queue?.workers ?? []).flatMap((w) => Object.entries(w.runs).map(([state, value]) => ({ labels: { worker: w.worker, state }, value }))),
    ),
    gauge('cigl_images_per_second', 'Training throughput of this daemon, all runs together.', [
      { value: h.training.reduce((s, r) => s + r.imagesPerSecond, 0) },
    ]),
    gauge('cigl_run_images_per_second', 'Training throughput per run.', h.training.map((r) => ({ labels: { run: r.id }, value: r.imagesPerSecond }))),
    gauge('cigl_run_step', 'Latest optimisation step per training run.', h.training.map((r) => ({ labels: { run: r.id }, value: r.step }))),
    gauge('cigl_tfjs_tensors', 'Tensors alive in TensorFlow.js (tf.memory().numTensors).', [{ value: h.tensors }]),
    gauge('cigl_tfjs_bytes', 'Bytes held by TensorFlow.js tensors (tf.memory().numBytes).', [{ value: h.tensorBytes }]),
    gauge('process_resident_memory_bytes', 'Resident set size of the daemon process.', [{ value: h.memory.rss }]),
    gauge('nodejs_heap_used_bytes', 'V8 heap in use.', [{ value: h.memory.heapUsed }]),
    gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript (buffers, tensors on the CPU backend).', [{ value: h.memory.external }]),
    gauge('cigl_stream_clients', 'Open live streams by kind.', [
      { labels: { kind: 'events' }, value: h.streams.events },
      { labels: { kind: 'arrow' }, value: h.streams.arrow },
    ]),
    gauge('cigl_daemon_uptime_seconds', 'Seconds since the daemon started.', [{ value: h.uptimeSeconds }]),
  ];
  return families.map(formatFamily).join('');
}

function formatFamily(f: Family): string {
  const lines = [`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`];
  for (const s of f.samples) lines.push(`${f.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  return lines.join('\n') + '\n';
}

function formatLabels(labels: Readonly<Record<string, string>> | undefined): string {
  if (!labels || Object.keys(labels).length === 0) return '';
  const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  return `{${Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
