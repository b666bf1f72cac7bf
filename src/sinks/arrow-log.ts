import * as fs from 'node:fs';
import * as path from 'node:path';
import { Observable, type MonoTypeOperatorFunction } from 'rxjs';
import type { Table } from 'apache-arrow';
import type { EqualWidthCalibration } from '../calibrate/metrics';
import type { LayerMaskUpdate, TrainEvent } from '../train/events';
import { syncFile, writeFully } from './atomic-file';
import {
  readStreamTolerant,
  rowsFromTable,
  schemaMessage,
  streamMessages,
  tableFromRows,
  writeArrowFileAtomic,
  type TableSpec,
} from './arrow-table';

/**
 * The run's Arrow logs, written while it trains:
 *
 * - `metrics.arrows`: IPC stream, long format, one row per (step, phase, metric).
 * - `mask-stats.arrows`: IPC stream, one row per masked layer per mask update.
 *
 * Every row of both carries `time`, an Arrow timestamp (milliseconds, UTC) of one clock, the Unix epoch:
 * when the event happened (training rows) or was logged (rows of the finishing stages). `step` is Int64;
 * the repeated labels (`run_id`, `phase`, `metric`, `layer`) are dictionary-encoded; each flush writes
 * its batch's dictionaries just before it (replacing the previous ones, as the IPC stream format
 * allows), so any complete prefix of a stream decodes on its own.
 * - at a clean end, `metrics.arrow` and `mask-stats.arrow`: the same rows as IPC files.
 * - `reliability.arrow`: the reliability-diagram bins (written once, by the calibration stage).
 *
 * Streams are appended in record batches, flushed every `flushIntervalMs` and on close, each flush as
 * one write of complete IPC messages, so the file is readable while the run is live and after a
 * `kill -9` (`readArrowLog` also drops a half-written last message, should a kill land inside a write).
 *
 * Resume: a resumed run never touches earlier files. It continues in a new segment, `metrics-1.arrows`,
 * `metrics-2.arrows`, ... (each a complete stream with its own schema message). `readArrowLog` reads all
 * segments in order; a row of a later segment replaces any earlier-segment row with the same key
 * (e.g. run_id, step, epoch, phase, metric), because a resumed run re-produces, deterministically, the
 * steps between its checkpoint and the kill. The final `.arrow` file holds that merged view.
 */
export const METRICS_LOG = 'metrics';
export const MASK_STATS_LOG = 'mask-stats';
export const RELIABILITY_FILE = 'reliability.arrow';

/** One value of the long-format metric log. */
export interface MetricRow {
  readonly runId: string;
  readonly step: number;
  readonly epoch: number;
  /** Milliseconds since the Unix epoch (column `time`, a UTC timestamp). */
  readonly wallTimeMs: number;
  /** train | val | test | mask | average | calibrate, or any stage's own name. */
  readonly phase: string;
  readonly metric: string;
  readonly value: number;
}

/** One masked layer at one mask update (the event's LayerMaskUpdate, located in the run). */
export interface MaskStatRow extends LayerMaskUpdate {
  readonly runId: string;
  readonly step: number;
  readonly epoch: number;
  /** Milliseconds since the Unix epoch (column `time`), the mask update's. */
  readonly wallTimeMs: number;
}

/** One bin of a reliability diagram. */
export interface ReliabilityRow {
  readonly runId: string;
  /** Which data the bins were measured on: validation | test. */
  readonly split: string;
  /** Which model: e.g. trained (last weights) or averaged. */
  readonly stage: string;
  /** Whether temperature scaling was applied. */
  readonly calibrated: boolean;
  /** Number of equal-width bins of this diagram (15 or 10). */
  readonly bins: number;
  readonly bin: number;
  readonly lower: number;
  readonly upper: number;
  readonly count: number;
  /** Mean confidence in the bin; null when the bin is empty. */
  readonly confidence: number | null;
  /** Accuracy in the bin; null when the bin is empty. */
  readonly accuracy: number | null;
}

/** The columns that place a row in a run: which run, at which step and epoch. */
const runStepColumns: TableSpec<{ runId: string; step: number; epoch: number; wallTimeMs: number }>['columns'] = [
  { column: 'run_id', field: 'runId', type: 'dictionary' },
  { column: 'step', field: 'step', type: 'int64' },
  { column: 'epoch', field: 'epoch', type: 'int32' },
  { column: 'time', field: 'wallTimeMs', type: 'timestamp' },
];

export const metricsSpec: TableSpec<MetricRow> = {
  table: 'metrics',
  columns: [
    ...runStepColumns,
    { column: 'phase', field: 'phase', type: 'dictionary' },
    { column: 'metric', field: 'metric', type: 'dictionary' },
    { column: 'value', field: 'value', type: 'float64' },
  ],
  key: ['runId', 'step', 'epoch', 'phase', 'metric'],
};

export const maskStatsSpec: TableSpec<MaskStatRow> = {
  table: 'mask-stats',
  columns: [
    ...runStepColumns,
    { column: 'layer', field: 'layer', type: 'dictionary' },
    { column: 'pruned', field: 'pruned', type: 'int32' },
    { column: 'grown', field: 'grown', type: 'int32' },
    { column: 'reselected', field: 'reselected', type: 'int32' },
    { column: 'density', field: 'density', type: 'float64' },
    { column: 'drop_fraction', field: 'dropFraction', type: 'float64' },
    { column: 'regrown_pruned', field: 'regrownPruned', type: 'int32' },
  ],
  key: ['runId', 'step', 'layer'],
};

export const reliabilitySpec: TableSpec<ReliabilityRow> = {
  table: 'reliability',
  columns: [
    { column: 'run_id', field: 'runId', type: 'dictionary' },
    { column: 'split', field: 'split', type: 'dictionary' },
    { column: 'stage', field: 'stage', type: 'dictionary' },
    { column: 'calibrated', field: 'calibrated', type: 'bool' },
    { column: 'bins', field: 'bins', type: 'int32' },
    { column: 'bin', field: 'bin', type: 'int32' },
    { column: 'lower', field: 'lower', type: 'float64' },
    { column: 'upper', field: 'upper', type: 'float64' },
    { column: 'count', field: 'count', type: 'int32' },
    { column: 'confidence', field: 'confidence', type: 'float64', nullable: true },
    { column: 'accuracy', field: 'accuracy', type: 'float64', nullable: true },
  ],
  key: ['runId', 'split', 'stage', 'calibrated', 'bins', 'bin'],
};

export interface ArrowLogOptions {
  /** Longest time buffered rows wait before they reach the file; default 2000 ms. */
  readonly flushIntervalMs?: number;
  /** Flush early when this many rows are buffered; default 4096. */
  readonly maxBufferedRows?: number;
  /** Continue an existing log in a new segment; without it, an existing log is an error. */
  readonly resume?: boolean;
  /** Log every n-th step event (epoch ends and mask updates always); default 1. */
  readonly logEverySteps?: number;
}

/** Segment files of a log, in order: `<base>.arrows`, `<base>-1.arrows`, `<base>-2.arrows`, ... */
export function segmentFiles(dir: string, base: string): string[] {
  return listSegments(dir, base).map((s) => s.file);
}

function listSegments(dir: string, base: string): { file: string; index: number }[] {
  if (!fs.existsSync(dir)) return [];
  const pattern = new RegExp(`^${escapeRegExp(base)}(?:-(\\d+))?\\.arrows$`);
  return fs
    .readdirSync(dir)
    .flatMap((name) => {
      const m = pattern.exec(name);
      return m ? [{ file: path.join(dir, name), index: m[1] === undefined ? 0 : Number(m[1]) }] : [];
    })
    .sort((a, b) => a.index - b.index);
}

/**
 * Appends rows of one table to a new IPC stream file. Rows are buffered and written in record batches;
 * the file is created exclusively (an existing file is never overwritten).
 */
export class ArrowStreamAppender<Row> {
  private readonly fd: number;
  private buffer: Row[] = [];
  private written = 0;
  private lastFlush = Date.now();
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  private readonly flushIntervalMs: number;
  private readonly maxBufferedRows: number;

  constructor(
    readonly file: string,
    private readonly spec: TableSpec<Row>,
    options: Pick<ArrowLogOptions, 'flushIntervalMs' | 'maxBufferedRows'> = {},
  ) {
    this.flushIntervalMs = positive(options.flushIntervalMs ?? 2000, 'flushIntervalMs');
    this.maxBufferedRows = positive(options.maxBufferedRows ?? 4096, 'maxBufferedRows');
    this.fd = fs.openSync(file, 'wx');
    // The schema goes out at once so a reader sees a valid (empty) stream from the start.
    writeFully(this.fd, schemaMessage(spec), file);
    this.timer = setInterval(() => this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Rows handed to the file so far. */
  get rowsWritten(): number {
    return this.written;
  }

  append(row: Row): void {
    if (this.closed) throw new Error(`${this.file}: append after close`);
    this.buffer.push(row);
    // A training loop that blocks the event loop starves the timer; check the clock here as well.
    if (this.buffer.length >= this.maxBufferedRows || Date.now() - this.lastFlush >= this.flushIntervalMs) this.flush();
  }

  flush(): void {
    this.lastFlush = Date.now();
    if (this.closed || this.buffer.length === 0) return;
    const rows = this.buffer;
    this.buffer = [];
    writeFully(this.fd, streamMessages(this.spec, rows, false), this.file);
    this.written += rows.length;
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearInterval(this.timer);
    try {
      syncFile(this.fd, this.file);
    } finally {
      fs.closeSync(this.fd);
    }
  }
}

export interface MetricInput {
  readonly step: number;
  readonly epoch: number;
  readonly phase: string;
  readonly metric: string;
  readonly value: number;
  /** Milliseconds since the Unix epoch; defaults to now. */
  readonly wallTimeMs?: number;
}

/**
 * The metric and mask-statistics logs of one run. `record` turns training events into rows; other stages
 * (averaging, calibration, test) add rows with `metric`. Close with `{ final: true }` at a clean end.
 */
export class ArrowRunLog {
  readonly metrics: ArrowStreamAppender<MetricRow>;
  readonly maskStats: ArrowStreamAppender<MaskStatRow>;
  private readonly logEverySteps: number;
  private snapshots = 0;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly runId: string,
    options: ArrowLogOptions,
  ) {
    this.logEverySteps = positive(options.logEverySteps ?? 1, 'logEverySteps');
    this.metrics = new ArrowStreamAppender(newSegment(dir, METRICS_LOG, options.resume), metricsSpec, options);
    try {
      this.maskStats = new ArrowStreamAppender(newSegment(dir, MASK_STATS_LOG, options.resume), maskStatsSpec, options);
    } catch (err) {
      this.metrics.close();
      throw err;
    }
  }

  /** Opens new segments in `dir` (created if missing). Refuses an existing log unless `resume` is set. */
  static open(dir: string, runId: string, options: ArrowLogOptions = {}): ArrowRunLog {
    fs.mkdirSync(dir, { recursive: true });
    return new ArrowRunLog(dir, runId, options);
  }

  record(event: TrainEvent): void {
    const at = { step: event.step, epoch: event.epoch, wallTimeMs: event.wallTimeMs };
    switch (event.type) {
      case 'step':
        if (event.step % this.logEverySteps !== 0) return;
        this.metric({ ...at, phase: 'train', metric: 'loss', value: event.loss });
        this.metric({ ...at, phase: 'train', metric: 'accuracy', value: event.accuracy });
        this.metric({ ...at, phase: 'train', metric: 'lr', value: event.lr });
        this.metric({ ...at, phase: 'train', metric: 'images_per_second', value: event.imagesPerSecond });
        return;
      case 'epochEnd':
        this.metric({ ...at, phase: 'train', metric: 'epoch_loss', value: event.trainLoss });
        this.metric({ ...at, phase: 'train', metric: 'epoch_accuracy', value: event.trainAccuracy });
        if (event.validationLoss !== undefined) this.metric({ ...at, phase: 'val', metric: 'loss', value: event.validationLoss });
        if (event.validationAccuracy !== undefined) {
          this.metric({ ...at, phase: 'val', metric: 'accuracy', value: event.validationAccuracy });
        }
        if (event.validationEce !== undefined) this.metric({ ...at, phase: 'val', metric: 'ece15', value: event.validationEce });
        if (event.testLoss !== undefined) this.metric({ ...at, phase: 'test', metric: 'loss', value: event.testLoss });
        if (event.testAccuracy !== undefined) this.metric({ ...at, phase: 'test', metric: 'accuracy', value: event.testAccuracy });
        if (event.testEce !== undefined) this.metric({ ...at, phase: 'test', metric: 'ece15', value: event.testEce });
        return;
      case 'maskUpdate':
        this.maskUpdate(event.step, event.epoch, event.layers, event.wallTimeMs);
        this.metric({ ...at, phase: 'mask', metric: 'pruned', value: sum(event.layers, 'pruned') });
        this.metric({ ...at, phase: 'mask', metric: 'grown', value: sum(event.layers, 'grown') });
        this.metric({ ...at, phase: 'mask', metric: 'regrown_pruned', value: sum(event.layers, 'regrownPruned') });
        return;
      case 'snapshot':
        this.snapshots++;
        this.metric({ ...at, phase: 'average', metric: 'snapshots', value: this.snapshots });
        return;
    }
  }

  metric(input: MetricInput): void {
    this.metrics.append({
      runId: this.runId,
      step: input.step,
      epoch: input.epoch,
      wallTimeMs: input.wallTimeMs ?? Date.now(),
      phase: input.phase,
      metric: input.metric,
      value: input.value,
    });
  }

  maskUpdate(step: number, epoch: number, layers: readonly LayerMaskUpdate[], wallTimeMs = Date.now()): void {
    for (const layer of layers) this.maskStats.append({ ...layer, runId: this.runId, step, epoch, wallTimeMs });
  }

  flush(): void {
    this.metrics.flush();
    this.maskStats.flush();
  }

  /**
   * Flushes and closes the streams. With `final`, also writes `metrics.arrow` and `mask-stats.arrow`
   * (IPC files of all segments merged): do that only when the run has really finished.
   */
  close(options: { final?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    this.metrics.close();
    this.maskStats.close();
    if (options.final) {
      writeArrowFileAtomic(path.join(this.dir, `${METRICS_LOG}.arrow`), readArrowLog(this.dir, METRICS_LOG));
      writeArrowFileAtomic(path.join(this.dir, `${MASK_STATS_LOG}.arrow`), readArrowLog(this.dir, MASK_STATS_LOG));
    }
  }
}

/**
 * A pass-through stage that logs every TrainEvent to `log`; the caller owns (and closes) the log, so
 * stages after training can keep adding rows to it.
 */
export function logTrainEvents(log: ArrowRunLog): MonoTypeOperatorFunction<TrainEvent> {
  return (source) =>
    new Observable<TrainEvent>((subscriber) =>
      source.subscribe({
        next: (event) => {
          try {
            log.record(event);
          } catch (err) {
            subscriber.error(err);
            return;
          }
          subscriber.next(event);
        },
        error: (err) => subscriber.error(err),
        complete: () => subscriber.complete(),
      }),
    );
}

/**
 * All segments of a streamed log (`metrics` or `mask-stats`) merged into one table, with later segments'
 * rows replacing earlier rows of the same key. Tolerates a half-written last message in any segment.
 */
export function readArrowLog(dir: string, base: typeof METRICS_LOG | typeof MASK_STATS_LOG): Table {
  if (base === METRICS_LOG) return tableFromRows(metricsSpec, readSegmentRows(dir, base, metricsSpec));
  return tableFromRows(maskStatsSpec, readSegmentRows(dir, base, maskStatsSpec));
}

/** The rows of every segment of `base` in `dir`, merged as described in readArrowLog. */
export function readSegmentRows<Row>(dir: string, base: string, spec: TableSpec<Row>): Row[] {
  const files = segmentFiles(dir, base);
  if (files.length === 0) throw new Error(`no ${base}.arrows log in ${dir}`);
  const segments = files.map((file) => rowsFromTable(spec, readStreamTolerant(fs.readFileSync(file), file).table, file));
  const key = (row: Row) => JSON.stringify(spec.key.map((k) => row[k]));
  const merged: Row[] = [];
  for (let s = 0; s < segments.length; s++) {
    const later = new Set(segments.slice(s + 1).flatMap((rows) => rows.map(key)));
    for (const row of segments[s]) if (!later.has(key(row))) merged.push(row);
  }
  return merged;
}

/** The rows of one reliability diagram computed by the calibration stage. */
export function reliabilityRows(
  at: Pick<ReliabilityRow, 'runId' | 'split' | 'stage' | 'calibrated'>,
  calibration: Pick<EqualWidthCalibration, 'bins' | 'table'>,
): ReliabilityRow[] {
  return calibration.table.map((row, bin) => ({
    ...at,
    bins: calibration.bins,
    bin,
    lower: row.lower,
    upper: row.upper,
    count: row.count,
    confidence: row.meanConfidence,
    accuracy: row.accuracy,
  }));
}

/** Writes the reliability bins of a run as an Arrow IPC file (atomically). */
export function writeReliabilityTable(file: string, rows: readonly ReliabilityRow[]): void {
  writeArrowFileAtomic(file, tableFromRows(reliabilitySpec, rows));
}

function newSegment(dir: string, base: string, resume: boolean | undefined): string {
  const existing = listSegments(dir, base);
  if (existing.length === 0) return path.join(dir, `${base}.arrows`);
  if (!resume) {
    throw new Error(`${existing[0].file} already exists; open the log with resume to continue it in a new segment`);
  }
  return path.join(dir, `${base}-${existing[existing.length - 1].index + 1}.arrows`);
}

function sum(layers: readonly LayerMaskUpdate[], field: 'pruned' | 'grown' | 'regrownPruned'): number {
  return layers.reduce((n, l) => n + l[field], 0);
}

function positive(value: number, name: string): number {
  if (!(Number.isFinite(value) && value > 0)) throw new Error(`arrow log option ${name} must be a positive number, got ${value}`);
  return value;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
