import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../sinks/atomic-file';
import type { RunSummary } from '../sinks/summary';
import { EPOCHS_FILE, readRunEpochs, writeEpochTable, type EpochTable } from './epochs';
import { writeSweepOutputs } from './outputs';
import { readRunSummary, readSweepRecord, SUMMARY_FILE, SWEEP_RECORD, type SweepRecord } from './record';

/**
 * What the reproduction report is built from: a sweep directory's record, its finished runs' summaries
 * and their per-epoch curves, read with every path made relative (so that the report, and a copy
 * committed beside it, read the same on any machine), and the copy itself.
 *
 * Relative paths. `cigl sweep` records absolute paths (a run's data.path, output.runsDir, the summary's
 * runDir and outputs). They are rewritten relative to the root of the checkout that holds the sweep
 * directory (the nearest folder above it with the cigl package.json; the sweep directory itself when
 * there is none): `/work/sweep/runs/x` becomes `runs/x`, the shared data beside the checkout
 * `../shared/datasets/cifar10`. In free text (the recorded command, a failed run's error) the root and
 * its parent folder are replaced the same way.
 */
export interface SweepArtefacts {
  readonly dir: string;
  readonly record: SweepRecord;
  /** Summaries of the finished runs, in sweep order. */
  readonly summaries: readonly RunSummary[];
  /** Per-epoch curves of the finished runs that have them, by run name. */
  readonly epochs: ReadonlyMap<string, EpochTable>;
}

/** Per-run files copied as they are; summary.json and config.json are copied with relative paths. */
const COPIED_AS_IS = ['reliability.png', 'reliability.svg', 'reliability.arrow'];
const COPIED_RELATIVE = [SUMMARY_FILE, 'config.json'];

/** The record, summaries and curves of every finished run (a summary.json whose hash matches the record). */
export function readSweepArtefacts(dir: string): SweepArtefacts {
  const root = checkoutRoot(dir);
  const record = relativePaths(readSweepRecord(dir), root);
  const summaries = record.runs.flatMap((run) => {
    const file = path.join(dir, run.runName, SUMMARY_FILE);
    if (!fs.existsSync(file)) {
      if (run.state === 'completed') throw new Error(`${path.join(dir, SWEEP_RECORD)} says ${run.runName} completed, but ${file} is missing`);
      return [];
    }
    const summary = readRunSummary(file);
    return summary.configHash === run.configHash ? [relativePaths(summary, root)] : [];
  });
  const epochs = new Map(summaries.flatMap((s) => {
    const table = readRunEpochs(path.join(dir, s.runName));
    return table ? [[s.runName, table] as const] : [];
  }));
  return { dir, record, summaries, epochs };
}

/**
 * Copies a sweep's small artefacts to `to`: sweep.json, and per run summary.json and config.json (with
 * relative paths), the reliability diagram and its bins, and epochs.json (the per-epoch curves, taken
 * from metrics.arrow when the run has no epochs.json); then writes the comparison and the sparsity figure
 * there afresh from them, so that the copy is a sweep directory of its own from which the report is
 * regenerated. The copy is built beside `to` and swapped in whole: runs no longer in the record do not
 * linger. `to` must be absent, empty or an earlier copy (a folder with a sweep.json).
 */
export async function copySweepArtefacts(from: string, to: string): Promise<SweepArtefacts> {
  if (path.resolve(from) === path.resolve(to)) return readSweepArtefacts(from);
  const source = readSweepArtefacts(from);
  const root = checkoutRoot(from);
  const target = path.resolve(to);
  if (fs.existsSync(target) && !fs.existsSync(path.join(target, SWEEP_RECORD)) && fs.readdirSync(target).length > 0) {
    throw new Error(`refusing to replace ${to} with the copy of ${from}: it is neither empty nor an earlier copy (no ${SWEEP_RECORD})`);
  }
  const stage = `${target}.partial`;
  fs.rmSync(stage, { recursive: true, force: true });
  for (const run of source.record.runs) {
    const [src, dst] = [path.join(from, run.runName), path.join(stage, run.runName)];
    const present = (name: string) => fs.existsSync(path.join(src, name));
    if (![...COPIED_AS_IS, ...COPIED_RELATIVE].some(present)) continue;
    fs.mkdirSync(dst, { recursive: true });
    for (const name of COPIED_AS_IS.filter(present)) fs.copyFileSync(path.join(src, name), path.join(dst, name));
    for (const name of COPIED_RELATIVE.filter(present)) writeJsonAtomic(path.join(dst, name), relativePaths(readJson(path.join(src, name)), root));
    const epochs = source.epochs.get(run.runName);
    if (epochs) writeEpochTable(path.join(dst, EPOCHS_FILE), epochs);
  }
  await writeSweepOutputs(stage, source.record, source.summaries);
  const old = `${target}.old`;
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(target)) fs.renameSync(target, old);
  fs.renameSync(stage, target);
  fs.rmSync(old, { recursive: true, force: true });
  return readSweepArtefacts(to);
}

/** The root of the cigl checkout that holds `dir` (a folder with cigl's package.json), else `dir` itself. */
export function checkoutRoot(dir: string): string {
  const start = path.resolve(dir);
  for (let d = start; ; d = path.dirname(d)) {
    const pkg = path.join(d, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'cigl') return d;
      } catch {
        // Not our package.json: keep looking upwards.
      }
    }
    if (path.dirname(d) === d) return start;
  }
}

/**
 * `value` with every absolute path made relative to `root` (POSIX separators), and in other strings the
 * root and its parent folder replaced by '' and '../'. Relative paths are left as they are.
 */
export function relativePaths<T>(value: T, root: string): T {
  const parent = path.dirname(root);
  const rewrite = (s: string): string => {
    if (path.isAbsolute(s)) return path.relative(root, s).split(path.sep).join('/') || '.';
    let out = s.split(`${root}${path.sep}`).join('');
    if (parent !== root && parent !== path.sep) out = out.split(`${parent}${path.sep}`).join('../');
    return out;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return rewrite(v);
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value) as T;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
