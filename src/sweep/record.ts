import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunConfig } from '../config/config';
export { readRunSummary } from '../sinks/summary';

/**
 * `sweep.json`: what a sweep directory holds — the command that made it, and per run its name, label,
 * configuration (resolved, with its hash) and state — rewritten atomically when a run starts and after it, so that it
 * is the index the comparison, the plot and the reproduction report are built from.
 */
export const SWEEP_RECORD = 'sweep.json';
export const SUMMARY_FILE = 'summary.json';

/** `running`: the run being trained (or killed while it was; the sweep's status then says `running` too). */
export type SweepRunState = 'pending' | 'running' | 'completed' | 'failed' | 'stopped';

export interface SweepRecordRun {
  /** Directory name under the sweep directory. */
  readonly runName: string;
  /** Row label in comparisons: the method, or the preset group's label. */
  readonly label: string;
  readonly method: string;
  readonly density: number;
  readonly seed: number;
  readonly configHash: string;
  readonly state: SweepRunState;
  /** Completed by an earlier invocation of the sweep (its summary.json was reused). */
  readonly reused?: boolean;
  /** Why a failed run failed. */
  readonly error?: string;
  readonly config: RunConfig;
}

export interface SweepRecord {
  readonly format: 1;
  /** `running` while the sweep is under way (or was killed). */
  readonly status: 'running' | 'completed' | 'stopped';
  /** A command line that re-creates the sweep, when the sweep was started by `cigl sweep`. */
  readonly command?: string;
  readonly runs: readonly SweepRecordRun[];
}

export function readSweepRecord(dir: string): SweepRecord {
  const file = path.join(dir, SWEEP_RECORD);
  const value = readJson(file, `${dir} is not a sweep directory`);
  const record = value as SweepRecord;
  if (record?.format !== 1 || !Array.isArray(record.runs)) throw new Error(`${file}: not a sweep record (format ${JSON.stringify(record?.format)}, runs ${typeof record?.runs})`);
  record.runs.forEach((r, i) => {
    for (const field of ['runName', 'label', 'method', 'configHash', 'state'] as const) {
      if (typeof r[field] !== 'string') throw new Error(`${file}: runs[${i}].${field} must be a string, got ${JSON.stringify(r[field])}`);
    }
  });
  return record;
}

function readJson(file: string, context: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${context}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${(err as Error).message})`);
  }
}
