import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunConfig } from '../config/config';
import type { RunSummary } from '../sinks/summary';

/**
 * `sweep.json`: what a sweep directory holds — the command that made it, and per run its name, label,
 * configuration (resolved, with its hash) and state — rewritten atomically after every run, so that it
 * is the index the comparison, the plot and the reproduction report are built from.
 */
export const SWEEP_RECORD = 'sweep.json';
export const SUMMARY_FILE = 'summary.json';

export type SweepRunState = 'pending' | 'completed' | 'failed' | 'stopped';

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

/** A run's summary.json, checked for the fields comparisons use; errors name the file and field. */
export function readRunSummary(file: string): RunSummary {
  const s = readJson(file, 'cannot read run summary') as Record<string, unknown>;
  const fail = (field: string, expected: string, value: unknown) => {
    throw new Error(`${file}: ${field} must be ${expected}, got ${JSON.stringify(value)}`);
  };
  if (typeof s !== 'object' || s === null) fail('(top level)', 'an object', s);
  for (const field of ['runName', 'configHash', 'method', 'model', 'split']) if (typeof s[field] !== 'string') fail(field, 'a string', s[field]);
  if (typeof s.targetDensity !== 'number' || !(s.targetDensity > 0 && s.targetDensity <= 1)) fail('targetDensity', 'a number in (0, 1]', s.targetDensity);
  if (!Number.isInteger(s.seed)) fail('seed', 'an integer', s.seed);
  if (!Array.isArray(s.results) || s.results.length === 0) fail('results', 'a non-empty list', s.results);
  (s.results as Record<string, unknown>[]).forEach((r, i) => {
    if (typeof r.stage !== 'string') fail(`results[${i}].stage`, 'a string', r.stage);
    if (typeof r.accuracy !== 'number') fail(`results[${i}].accuracy`, 'a number', r.accuracy);
    if (typeof r.ece !== 'object' || r.ece === null || Object.values(r.ece).some((v) => typeof v !== 'number')) fail(`results[${i}].ece`, 'a map of bin count to number', r.ece);
  });
  return s as unknown as RunSummary;
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
