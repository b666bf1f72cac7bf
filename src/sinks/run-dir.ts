import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalJson, configDiff, configHash, type RunConfig } from '../config/config';
import { MASK_STATS_LOG, METRICS_LOG, RELIABILITY_FILE } from './arrow-log';
import { writeFileAtomic } from './atomic-file';
import { removeCheckpointLeftovers } from './checkpoint';

/**
 * One directory per run under `output.runsDir`. A run directory is created exclusively and never
 * overwritten: starting a run whose directory exists is an error unless it is a resume, and a resume
 * must bring the same configuration (by hash) as the one saved in the directory.
 */
export interface RunPaths {
  readonly dir: string;
  /** The resolved configuration, sorted-key JSON. */
  readonly config: string;
  /** First segment of the streamed metric log (resumes add metrics-1.arrows, ...). */
  readonly metricsStream: string;
  /** All metric rows as an IPC file, written at a clean end. */
  readonly metricsFile: string;
  readonly maskStatsStream: string;
  readonly maskStatsFile: string;
  readonly reliability: string;
  readonly reliabilitySvg: string;
  readonly reliabilityPng: string;
  readonly checkpoints: string;
  /** The final model: tfjs Layers `model.json` + weights, the compact sparse file and safetensors. */
  readonly model: string;
  readonly sparseModel: string;
  readonly safetensors: string;
  readonly summary: string;
}

export interface RunDir {
  readonly name: string;
  readonly dir: string;
  readonly paths: RunPaths;
  /** True when an existing run directory was reopened with `resume`. */
  readonly resumed: boolean;
  readonly configHash: string;
}

export class RunDirError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunDirError';
  }
}

export function runPaths(dir: string): RunPaths {
  const at = (name: string) => path.join(dir, name);
  return {
    dir,
    config: at('config.json'),
    metricsStream: at(`${METRICS_LOG}.arrows`),
    metricsFile: at(`${METRICS_LOG}.arrow`),
    maskStatsStream: at(`${MASK_STATS_LOG}.arrows`),
    maskStatsFile: at(`${MASK_STATS_LOG}.arrow`),
    reliability: at(RELIABILITY_FILE),
    reliabilitySvg: at('reliability.svg'),
    reliabilityPng: at('reliability.png'),
    checkpoints: at('checkpoints'),
    model: at('model'),
    sparseModel: path.join(dir, 'model', 'weights.cigl-sparse'),
    safetensors: path.join(dir, 'model', 'model.safetensors'),
    summary: at('summary.json'),
  };
}

export interface PrepareRunDirOptions {
  /** Reopen an existing run directory (its saved config must match). */
  readonly resume?: boolean;
  /** Clock for generated names; default now. */
  readonly now?: Date;
}

/**
 * Creates (or, with `resume`, reopens) the run directory for `config`, after checking that the output
 * directory is writable, so that a bad location fails before any training.
 */
export function prepareRunDir(config: RunConfig, options: PrepareRunDirOptions = {}): RunDir {
  const runsDir = config.output.runsDir;
  const hash = configHash(config);
  if (options.resume) {
    if (!config.output.runName) {
      throw new RunDirError('--resume needs the name of the run to continue: set output.runName (e.g. --output.runName NAME)');
    }
    const dir = path.join(runsDir, config.output.runName);
    if (!fs.existsSync(dir)) throw new RunDirError(`cannot resume: run directory ${dir} does not exist`);
    const saved = readSavedConfig(dir);
    const differences = configDiff(saved, config);
    if (differences.length > 0) {
      throw new RunDirError(
        `cannot resume ${dir}: the configuration differs from the one it was started with:\n` +
          differences.map((d) => `  ${d.path}: ${JSON.stringify(d.before)} (saved) vs ${JSON.stringify(d.after)} (now)`).join('\n'),
      );
    }
    ensureWritableDir(dir);
    removeCheckpointLeftovers(runPaths(dir).checkpoints);
    return { name: config.output.runName, dir, paths: runPaths(dir), resumed: true, configHash: hash };
  }

  ensureWritableDir(runsDir);
  const name = config.output.runName ?? generateRunName(config, options.now ?? new Date());
  let dir = path.join(runsDir, name);
  let chosen = name;
  for (let attempt = 2; ; attempt++) {
    try {
      fs.mkdirSync(dir); // exclusive: fails if it exists, also against a concurrent run
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new RunDirError(`cannot create run directory ${dir}: ${describe(err)}`);
      if (config.output.runName) {
        throw new RunDirError(
          `run directory ${dir} already exists; pass --resume to continue that run, or choose another output.runName ` +
            '(existing runs are never overwritten)',
        );
      }
      chosen = `${name}-${attempt}`;
      dir = path.join(runsDir, chosen);
    }
  }
  const paths = runPaths(dir);
  fs.mkdirSync(paths.checkpoints);
  fs.mkdirSync(paths.model);
  writeFileAtomic(paths.config, formatConfig(config));
  return { name: chosen, dir, paths, resumed: false, configHash: hash };
}

/**
 * Removes a run directory that prepareRunDir created for a run that failed before training anything (a
 * data set that cannot be read, a model that cannot be built): it holds only the saved config and the
 * empty checkpoints/ and model/ folders, and left in place it would block a corrected re-run under the
 * same name ("already exists", or "configuration differs" on --resume). Anything more in it (a metric
 * log, a checkpoint) is a run that started: then nothing is removed. Returns whether it was removed.
 */
export function removeUnstartedRunDir(runDir: RunDir): boolean {
  const { dir, paths } = runDir;
  const entries = (folder: string) => {
    try {
      return fs.readdirSync(folder);
    } catch {
      return undefined;
    }
  };
  const scaffolding = [path.basename(paths.config), path.basename(paths.checkpoints), path.basename(paths.model)];
  const top = entries(dir);
  if (!top || !top.every((name) => scaffolding.includes(name))) return false;
  // A checkpoint write cut short leaves only a .tmp-* folder: no checkpoint.
  if ((entries(paths.checkpoints) ?? []).some((name) => !name.startsWith('.tmp-'))) return false;
  if ((entries(paths.model) ?? []).length > 0) return false;
  fs.rmSync(dir, { recursive: true, force: true });
  return true;
}

/** The configuration saved in a run directory. */
export function readSavedConfig(dir: string): RunConfig {
  const file = runPaths(dir).config;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RunDirError(`${dir} is not a cigl run directory: cannot read ${file} (${describe(err)})`);
  }
  try {
    return JSON.parse(text) as RunConfig;
  } catch (err) {
    throw new RunDirError(`${file} is not valid JSON (${(err as Error).message})`);
  }
}

/** The resolved configuration as saved: sorted keys, two-space indent. */
export function formatConfig(config: RunConfig): string {
  return JSON.stringify(JSON.parse(canonicalJson(config)), null, 2) + '\n';
}

/** Creates `dir` if needed and proves it writable by creating and removing a file in it. */
export function ensureWritableDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new RunDirError(`cannot create output directory ${dir}: ${describe(err)}`);
  }
  const probe = path.join(dir, `.cigl-write-probe-${process.pid}`);
  try {
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (err) {
    throw new RunDirError(`output directory ${dir} is not writable: ${describe(err)}`);
  }
}

/** `<method>-<model>-d<density>-s<seed>-<yyyymmdd-hhmmss>` (UTC). */
export function generateRunName(config: RunConfig, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${config.sparse.method}-${config.model.name}-d${config.sparse.density}-s${config.seed}-${stamp}`;
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const reasons: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOTDIR: 'a path component is a file, not a directory',
    ENOSPC: 'no space left on device',
  };
  return e.code ? `${reasons[e.code] ?? e.code} (${e.code})` : e.message;
}
