import * as fs from 'node:fs';
import * as path from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { metricsSpec, METRICS_LOG } from '../sinks/arrow-log';
import { rowsFromTable } from '../sinks/arrow-table';
import { writeJsonAtomic } from '../sinks/atomic-file';

/**
 * A run's per-epoch curves, taken out of its metric log (`metrics.arrow`, a few MB with every step's
 * rows) into `epochs.json`, small enough to commit beside the report:
 *
 * ```json
 * { "format": 1, "source": "metrics.arrow", "epochs": [ { "epoch": 1, "lr": 0.01, "trainLoss": 1.52, "trainAccuracy": 0.45,
 *   "valLoss": 1.31, "valAccuracy": 0.53, "valEce15": 0.021, "testLoss": 1.33, "testAccuracy": 0.52, "testEce15": 0.019 }, ... ] }
 * ```
 *
 * `epoch` counts completed epochs (the log's 0-based epoch + 1). `trainLoss` / `trainAccuracy` are the
 * epoch's running means over its training batches (phase 'train', metrics 'epoch_loss' / 'epoch_accuracy');
 * `val*` and `test*` are the end-of-epoch evaluations (phases 'val' / 'test', metrics 'loss', 'accuracy',
 * 'ece15'; 'test' only with train.testEveryEpoch); `lr` is the learning rate of the epoch's last logged
 * step. A field is left out where the log has no value. The final evaluation's rows (metric names with a
 * stage prefix, e.g. 'final.accuracy') are not per-epoch and are not taken.
 */
export const EPOCHS_FILE = 'epochs.json';

export interface EpochRow {
  readonly epoch: number;
  readonly lr?: number;
  readonly trainLoss?: number;
  readonly trainAccuracy?: number;
  readonly valLoss?: number;
  readonly valAccuracy?: number;
  readonly valEce15?: number;
  readonly testLoss?: number;
  readonly testAccuracy?: number;
  readonly testEce15?: number;
}

export interface EpochTable {
  readonly format: 1;
  readonly source: string;
  readonly epochs: readonly EpochRow[];
}

type ValueField = Exclude<keyof EpochRow, 'epoch'>;

/** (phase, metric) of the log → field of the row. */
const FIELDS: Readonly<Record<string, ValueField>> = {
  'train/epoch_loss': 'trainLoss',
  'train/epoch_accuracy': 'trainAccuracy',
  'val/loss': 'valLoss',
  'val/accuracy': 'valAccuracy',
  'val/ece15': 'valEce15',
  'test/loss': 'testLoss',
  'test/accuracy': 'testAccuracy',
  'test/ece15': 'testEce15',
};
const VALUE_FIELDS: readonly ValueField[] = ['lr', ...Object.values(FIELDS)];

/** The per-epoch table of a metric log file (an Arrow IPC file with the metrics columns). */
export function epochsFromMetricLog(file: string): EpochTable {
  let table;
  try {
    table = tableFromIPC(fs.readFileSync(file));
  } catch (err) {
    throw new Error(`cannot read the metric log ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const rows = rowsFromTable(metricsSpec, table, file);
  const byEpoch = new Map<number, Record<string, number>>();
  const lrStep = new Map<number, number>();
  const at = (epoch: number) => byEpoch.get(epoch) ?? byEpoch.set(epoch, {}).get(epoch)!;
  for (const r of rows) {
    const field = FIELDS[`${r.phase}/${r.metric}`];
    if (field) at(r.epoch)[field] = r.value;
    else if (r.phase === 'train' && r.metric === 'lr' && r.step >= (lrStep.get(r.epoch) ?? -1)) {
      lrStep.set(r.epoch, r.step);
      at(r.epoch).lr = r.value;
    }
  }
  // An epoch is in the table once it ended (its running training loss was logged).
  const epochs = [...byEpoch.entries()]
    .filter(([, values]) => values.trainLoss !== undefined)
    .sort(([a], [b]) => a - b)
    .map(([epoch, values]) => ({ epoch: epoch + 1, ...Object.fromEntries(VALUE_FIELDS.flatMap((f) => (values[f] === undefined ? [] : [[f, values[f]]]))) }));
  return { format: 1, source: path.basename(file), epochs };
}

/** Reads and checks an epochs.json; errors name the file and the field. */
export function readEpochTable(file: string): EpochTable {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the per-epoch table ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const t = value as EpochTable;
  if (t?.format !== 1 || !Array.isArray(t.epochs)) throw new Error(`${file}: not a per-epoch table (format ${JSON.stringify(t?.format)}, epochs ${typeof t?.epochs})`);
  t.epochs.forEach((row, i) => {
    if (!Number.isInteger(row.epoch) || row.epoch < 1) throw new Error(`${file}: epochs[${i}].epoch must be an integer ≥ 1, got ${JSON.stringify(row.epoch)}`);
    for (const f of VALUE_FIELDS) {
      const v = row[f];
      if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v))) throw new Error(`${file}: epochs[${i}].${f} must be a finite number, got ${JSON.stringify(v)}`);
    }
    if (i > 0 && row.epoch <= t.epochs[i - 1].epoch) throw new Error(`${file}: epochs[${i}].epoch ${row.epoch} does not follow ${t.epochs[i - 1].epoch}`);
  });
  return t;
}

/** A run directory's per-epoch table: its epochs.json, else taken from its metrics.arrow, else undefined. */
export function readRunEpochs(runDir: string): EpochTable | undefined {
  const json = path.join(runDir, EPOCHS_FILE);
  if (fs.existsSync(json)) return readEpochTable(json);
  const log = path.join(runDir, `${METRICS_LOG}.arrow`);
  return fs.existsSync(log) ? epochsFromMetricLog(log) : undefined;
}

export function writeEpochTable(file: string, table: EpochTable): void {
  writeJsonAtomic(file, table);
}
