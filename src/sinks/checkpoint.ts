import * as fs from 'node:fs';
import * as path from 'node:path';
import { sizeOf, type NamedArray, type NamedArrays } from '../util/named-arrays';
import { fsyncDir, writeAndSync, writeFileAtomic } from './atomic-file';
import { CorruptFileError, decodeFramed, encodeFramed, float32Bytes, pad8, readFloat32 } from './framed-file';

/**
 * Atomic training checkpoints under `<run>/checkpoints/`:
 *
 * ```
 * checkpoints/step-0000001200/checkpoint.bin   arrays + state, checksummed (framed-file.ts)
 * checkpoints/step-0000001200/state.json       readable copy of the state (not read back)
 * checkpoints/latest                           name of the newest directory (for people and tools)
 * checkpoints/.tmp-*                           a write in progress, or one killed mid-way: ignored
 * ```
 *
 * A checkpoint is written into a temporary directory, fsynced, and renamed into place, so a `kill -9` at
 * any moment leaves the previous checkpoint intact. A write that fails (a full disk) removes its
 * temporary directory at once, freeing what it took; one killed mid-way is removed by the next write
 * or by removeCheckpointLeftovers when the run is resumed. The loader picks the highest step whose file
 * validates; the `latest` pointer is a convenience, never trusted over the files themselves.
 */
export const CHECKPOINT_MAGIC = 'CIGLCKPT';
export const CHECKPOINT_VERSION = 1;
const BIN = 'checkpoint.bin';
const STATE = 'state.json';
const LATEST = 'latest';
const STEP_DIR = /^step-(\d{10})$/;

export interface Checkpoint<State = unknown> {
  /** Orders checkpoints: the number of optimisation steps completed when it was taken. */
  readonly step: number;
  /** Named float arrays in groups, e.g. { weights, masks, optimiser, averaging }; any group names. */
  readonly arrays: Readonly<Record<string, NamedArrays>>;
  /** Everything else a resume needs (RNG states, epoch, data position, ...). Plain JSON, finite numbers. */
  readonly state: State;
}

export interface LoadedCheckpoint<State = unknown> extends Checkpoint<State> {
  readonly dir: string;
  /** Newer checkpoint directories that failed validation, with the reason, newest first. */
  readonly skipped: readonly { readonly dir: string; readonly reason: string }[];
}

export interface WriteCheckpointOptions {
  /** How many committed checkpoints to keep (oldest removed first); default 2. */
  readonly keep?: number;
  /** Test seam: called after the data is written and synced, just before the commit rename. */
  readonly beforeCommit?: (tmpDir: string) => void;
}

interface ArrayEntry {
  group: string;
  name: string;
  shape: number[];
  offset: number;
}

/** Writes one checkpoint atomically and prunes old ones. Returns the committed directory. */
export function writeCheckpoint(checkpointsDir: string, checkpoint: Checkpoint, options: WriteCheckpointOptions = {}): string {
  const keep = options.keep ?? 2;
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`checkpoint keep must be an integer >= 1, got ${keep}`);
  if (!Number.isInteger(checkpoint.step) || checkpoint.step < 0) {
    throw new Error(`checkpoint step must be a non-negative integer, got ${checkpoint.step}`);
  }
  assertPlainJson(checkpoint.state, 'state');
  fs.mkdirSync(checkpointsDir, { recursive: true });
  removeCheckpointLeftovers(checkpointsDir);

  const name = `step-${String(checkpoint.step).padStart(10, '0')}`;
  const tmp = path.join(checkpointsDir, `.tmp-${name}-${process.pid}`);
  fs.mkdirSync(tmp);
  try {
    writeAndSync(path.join(tmp, BIN), encodeCheckpoint(checkpoint));
    writeAndSync(path.join(tmp, STATE), JSON.stringify({ step: checkpoint.step, state: checkpoint.state }, null, 2) + '\n');
    fsyncDir(tmp);
    options.beforeCommit?.(tmp);
  } catch (err) {
    // A full disk stays full while the half-written copy lies there: remove it, the previous checkpoint stands.
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }

  const target = path.join(checkpointsDir, name);
  if (fs.existsSync(target)) {
    // Re-taking a step after a resume: move the old one aside first; rename cannot replace a directory.
    fs.renameSync(target, path.join(checkpointsDir, `.old-${name}-${process.pid}`));
  }
  fs.renameSync(tmp, target);
  fsyncDir(checkpointsDir);
  writeFileAtomic(path.join(checkpointsDir, LATEST), name + '\n');

  for (const old of listCheckpoints(checkpointsDir).slice(keep)) fs.rmSync(old.dir, { recursive: true, force: true });
  removeCheckpointLeftovers(checkpointsDir);
  return target;
}

/** Committed checkpoint directories, newest (highest step) first. Unvalidated. */
export function listCheckpoints(checkpointsDir: string): { readonly step: number; readonly dir: string }[] {
  if (!fs.existsSync(checkpointsDir)) return [];
  return fs
    .readdirSync(checkpointsDir)
    .flatMap((entry) => {
      const m = STEP_DIR.exec(entry);
      return m ? [{ step: Number(m[1]), dir: path.join(checkpointsDir, entry) }] : [];
    })
    .sort((a, b) => b.step - a.step);
}

/**
 * The newest checkpoint that validates, or undefined when none was ever committed (a run killed before
 * its first checkpoint starts over). Throws when checkpoints exist but every one of them is corrupt.
 */
export function loadLatestCheckpoint<State = unknown>(checkpointsDir: string): LoadedCheckpoint<State> | undefined {
  const skipped: { dir: string; reason: string }[] = [];
  for (const { dir } of listCheckpoints(checkpointsDir)) {
    try {
      return { ...loadCheckpoint<State>(dir), skipped };
    } catch (err) {
      skipped.push({ dir, reason: (err as Error).message });
    }
  }
  if (skipped.length > 0) {
    throw new Error(`no valid checkpoint in ${checkpointsDir}:\n${skipped.map((s) => `  ${s.reason}`).join('\n')}`);
  }
  return undefined;
}

/** Loads and validates one checkpoint directory. */
export function loadCheckpoint<State = unknown>(dir: string): LoadedCheckpoint<State> {
  const file = path.join(dir, BIN);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new CorruptFileError(file, `cannot read checkpoint (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const { header, body } = decodeFramed(bytes, CHECKPOINT_MAGIC, CHECKPOINT_VERSION, file);
  const h = header as { step?: unknown; state?: unknown; arrays?: unknown };
  if (typeof h !== 'object' || h === null || !Number.isInteger(h.step) || !Array.isArray(h.arrays) || !('state' in h)) {
    throw new CorruptFileError(file, 'header lacks step, state or arrays');
  }
  const arrays: Record<string, Record<string, NamedArray>> = {};
  for (const [i, raw] of h.arrays.entries()) {
    const e = raw as Partial<ArrayEntry>;
    if (
      typeof e !== 'object' ||
      e === null ||
      typeof e.group !== 'string' ||
      typeof e.name !== 'string' ||
      !Array.isArray(e.shape) ||
      !e.shape.every((d) => Number.isInteger(d) && d >= 0) ||
      !Number.isInteger(e.offset)
    ) {
      throw new CorruptFileError(file, `array entry ${i} is not a valid description`);
    }
    const what = `array ${e.group}/${e.name}`;
    const group = (arrays[e.group] ??= {});
    group[e.name] = { shape: e.shape, values: readFloat32(body, e.offset as number, sizeOf(e.shape), file, what) };
  }
  return { step: h.step as number, arrays, state: h.state as State, dir, skipped: [] };
}

function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  const entries: ArrayEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [group, named] of Object.entries(checkpoint.arrays)) {
    for (const [name, array] of Object.entries(named)) {
      if (!(array.values instanceof Float32Array) || sizeOf(array.shape) !== array.values.length) {
        throw new Error(`checkpoint array ${group}/${name}: shape [${array.shape.join(', ')}] does not match its Float32Array`);
      }
      const bytes = float32Bytes(array.values);
      entries.push({ group, name, shape: [...array.shape], offset });
      chunks.push(bytes, new Uint8Array(pad8(bytes.length) - bytes.length));
      offset += pad8(bytes.length);
    }
  }
  return encodeFramed(CHECKPOINT_MAGIC, CHECKPOINT_VERSION, { step: checkpoint.step, state: checkpoint.state, arrays: entries }, chunks);
}

/**
 * Removes the temporary and moved-aside directories of earlier (possibly killed) writers. A run being
 * resumed calls it first, so that a write cut short by a full disk does not keep the disk full.
 */
export function removeCheckpointLeftovers(checkpointsDir: string): void {
  if (!fs.existsSync(checkpointsDir)) return;
  for (const entry of fs.readdirSync(checkpointsDir)) {
    if (entry.startsWith('.tmp-') || entry.startsWith('.old-')) {
      fs.rmSync(path.join(checkpointsDir, entry), { recursive: true, force: true });
    }
  }
}

/** JSON would silently turn NaN/Infinity into null and drop undefined; refuse instead of resuming wrong. */
function assertPlainJson(value: unknown, where: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`checkpoint ${where} is ${value}, which JSON cannot store`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => assertPlainJson(v, `${where}[${i}]`));
    return;
  }
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) assertPlainJson(v, `${where}.${k}`);
    return;
  }
  throw new Error(`checkpoint ${where} is not plain JSON (${typeof value === 'object' ? value?.constructor?.name : typeof value})`);
}
