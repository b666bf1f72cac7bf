import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalJson, configValues, type RunConfig } from '../config/config';
import { parseRunSummary, STAGES, type RunSummary, type StageResult } from '../sinks/summary';
import { readSweepRecord, SWEEP_RECORD, type SweepRecordRun } from '../sweep/record';
import type { DaemonHome } from './daemon-home';
import { isInside } from './run-request';
import { isRunId } from './run-id';
import type { RunLiveStats } from './run-activity';
import type { RunQueue, RunRecord, RunState } from './run-queue';

/**
 * The study: every run the dashboard can compare, one compact row each (`GET /study`). A study is what
 * the daemon's runs folder and its queue hold together:
 *
 * - runs of the queue (with a shared Redis queue and runs folder: the whole fleet's, whichever daemon
 *   trained them), their state from the queue;
 * - run directories of the runs folder that no queue run owns (made by `cigl train --output.runsDir`),
 *   completed when they have a summary.json;
 * - runs of sweep directories in the runs folder (`cigl sweep` run locally: `<sweep>/sweep.json` and a
 *   directory per run), their state from sweep.json, their id `<sweep>.<run>` as a queued sweep's.
 *
 * The row holds what the runs table and the sparsity plots need (settings, state, the final numbers per
 * model stage), never the logs: curves are fetched per selected run (study-curves.ts). Files are parsed
 * once and read again only when their size or mtime changes, so polling a 100-run study costs a stat
 * per file.
 */
export type StudyRunState = RunState | 'incomplete';

/** One model's final numbers (summary.json's results). */
export interface StageNumbers {
  readonly accuracy: number;
  readonly ece15?: number;
  readonly ece10?: number;
  readonly nll?: number;
  readonly brier?: number;
  /** The temperature-scaled model's temperature. */
  readonly temperature?: number;
}

export interface StudyRun {
  readonly id: string;
  /** The sweep the run belongs to: a queued sweep's prefix (`<sweep>.<run>`) or its sweep folder. */
  readonly sweep?: string;
  /** Where the run is known from. */
  readonly source: 'queue' | 'folder' | 'sweep';
  readonly state: StudyRunState;
  readonly step?: number;
  readonly worker?: string;
  readonly method: string;
  readonly model: string;
  readonly density: number;
  readonly seed: number;
  readonly epochs: number;
  /** Config values (dotted paths) that differ between the study's runs, besides the five above. */
  readonly settings: Readonly<Record<string, string | number | boolean | null>>;
  /** The headline stage's name, once the run has a summary. */
  readonly headline?: string;
  readonly live?: StageNumbers;
  readonly averaged?: StageNumbers;
  readonly scaled?: StageNumbers;
  /** The headline model's numbers (one of the above, or `live, recomputed BN`). */
  readonly final?: StageNumbers;
  /** The final model's density over its masked layers. */
  readonly finalDensity?: number;
  readonly error?: string;
}

export interface Study {
  readonly runs: readonly StudyRun[];
  /** The keys of `settings`: config paths whose values differ between runs. */
  readonly settings: readonly string[];
}

/** Config paths every row carries as fields of its own, and those that never make a difference worth a column. */
const CORE_SETTINGS = ['sparse.method', 'model.name', 'sparse.density', 'seed', 'train.epochs'];

interface Candidate {
  readonly id: string;
  readonly dir?: string;
  readonly sweep?: string;
  readonly source: StudyRun['source'];
  readonly state: StudyRunState;
  readonly config: RunConfig;
  readonly record?: RunRecord;
}

export class StudyIndex {
  private readonly files = new Map<string, { readonly stamp: string; readonly value: unknown }>();
  /** Run directories by id, as of the last listing (curves of folder and sweep runs are found here). */
  private dirs = new Map<string, string>();

  constructor(
    private readonly home: DaemonHome,
    private readonly queue: RunQueue,
    private readonly live: (id: string) => RunLiveStats | undefined = () => undefined,
  ) {}

  async list(): Promise<Study> {
    const records = await this.queue.list();
    const candidates = new Map<string, Candidate>();
    for (const record of records) {
      candidates.set(record.id, { id: record.id, dir: path.join(this.home.runsDir, record.id), sweep: queuedSweepOf(record.id), source: 'queue', state: record.state, config: record.config, record });
    }
    for (const c of this.scanRunsFolder()) if (!candidates.has(c.id)) candidates.set(c.id, c);
    const all = [...candidates.values()];
    this.dirs = new Map(all.flatMap((c) => (c.dir ? [[c.id, c.dir] as const] : [])));
    const flat = all.map((c) => flattenConfig(c.config));
    const settings = differingKeys(flat);
    const runs = all.map((c, i) => this.row(c, Object.fromEntries(settings.map((k) => [k, flat[i].get(k) ?? null]))));
    return { runs, settings };
  }

  /**
   * The directory of a run of the last listing (lists again when the id is new); undefined when it does
   * not exist (yet) or resolves outside the runs folder (a symlink), whose files are never served.
   */
  async dirOf(id: string): Promise<string | undefined> {
    if (!this.dirs.has(id)) await this.list();
    const dir = this.dirs.get(id);
    if (dir === undefined) return undefined;
    try {
      return isInside(fs.realpathSync(dir), fs.realpathSync(this.home.runsDir)) ? dir : undefined;
    } catch {
      return undefined;
    }
  }

  private row(c: Candidate, settings: Record<string, string | number | boolean | null>): StudyRun {
    const summary = c.dir ? this.summary(c.dir) : undefined;
    const live = c.record ? this.live(c.id) : undefined;
    const stages = summary ? stageNumbers(summary) : {};
    return {
      id: c.id,
      sweep: c.sweep,
      source: c.source,
      state: c.state,
      step: live && c.state === 'running' ? live.step : c.record?.step ?? summary?.steps,
      worker: c.record?.worker,
      method: c.config.sparse.method,
      model: c.config.model.name,
      density: c.config.sparse.density,
      seed: c.config.seed,
      epochs: c.config.train.epochs,
      settings,
      headline: summary?.headline,
      ...stages,
      finalDensity: summary?.density?.masked.density,
      error: c.record?.error,
    };
  }

  /** Run directories and sweep folders of the runs folder (anything unreadable is left out). */
  private scanRunsFolder(): Candidate[] {
    const out: Candidate[] = [];
    let names: string[];
    try {
      names = fs.readdirSync(this.home.runsDir).sort();
    } catch {
      return out;
    }
    for (const name of names) {
      if (!isRunId(name)) continue;
      const dir = path.join(this.home.runsDir, name);
      const config = this.json(path.join(dir, 'config.json')) as RunConfig | undefined;
      if (isConfig(config)) {
        out.push({ id: name, dir, sweep: queuedSweepOf(name), source: 'folder', state: this.summary(dir) ? 'completed' : 'incomplete', config });
        continue;
      }
      const sweepFile = path.join(dir, SWEEP_RECORD);
      if (this.stamp(sweepFile) === undefined) continue;
      let runs: readonly SweepRecordRun[];
      let status: string;
      try {
        ({ runs, status } = this.cached(sweepFile, () => readSweepRecord(dir)));
      } catch {
        continue; // being rewritten or damaged: the next poll tries again
      }
      for (const run of runs) {
        const id = `${name}.${run.runName}`;
        const runDir = path.join(dir, run.runName);
        if (!isRunId(id) || !isRunId(run.runName) || !isConfig(run.config)) continue;
        const started = fs.existsSync(runDir);
        const state: StudyRunState =
          run.state === 'completed' ? 'completed' : run.state === 'failed' ? 'failed' : run.state === 'stopped' ? 'cancelled' : status !== 'running' ? 'incomplete' : started ? 'running' : 'queued';
        out.push({ id, dir: started ? runDir : undefined, sweep: name, source: 'sweep', state, config: run.config });
      }
    }
    return out;
  }

  private summary(dir: string): RunSummary | undefined {
    const file = path.join(dir, 'summary.json');
    const value = this.json(file);
    if (value === undefined) return undefined;
    try {
      return this.cached(`${file}#parsed`, () => parseRunSummary(value, file), this.stamp(file));
    } catch {
      return undefined; // an unreadable summary: the run shows without results
    }
  }

  /** A JSON file's content, parsed once per version; undefined when missing, unreadable or outside the runs folder. */
  private json(file: string): unknown {
    if (this.stamp(file) === undefined) return undefined;
    try {
      return this.cached(file, () => {
        const real = fs.realpathSync(file);
        if (!isInside(real, fs.realpathSync(this.home.runsDir))) return undefined;
        return JSON.parse(fs.readFileSync(real, 'utf8')) as unknown;
      });
    } catch {
      return undefined;
    }
  }

  private cached<T>(key: string, read: () => T, stamp = this.stamp(key)): T {
    const hit = this.files.get(key);
    if (hit && hit.stamp === stamp) return hit.value as T;
    const value = read();
    this.files.set(key, { stamp: stamp ?? '', value });
    return value;
  }

  private stamp(file: string): string | undefined {
    try {
      const s = fs.statSync(file);
      return `${s.size}:${s.mtimeMs}`;
    } catch {
      return undefined;
    }
  }
}

/** `grid.cigl-d0.1-s0` → `grid`: the queue id of a sweep's run is `<sweep>.<run>`. */
export function queuedSweepOf(id: string): string | undefined {
  const dot = id.indexOf('.');
  return dot > 0 ? id.slice(0, dot) : undefined;
}

function isConfig(value: unknown): value is RunConfig {
  const c = value as RunConfig | undefined;
  return typeof c?.sparse?.method === 'string' && typeof c.model?.name === 'string' && typeof c.train?.epochs === 'number';
}

/** The summary's results by stage: live, averaged, temperature-scaled, and the headline's. */
export function stageNumbers(summary: RunSummary): Pick<StudyRun, 'live' | 'averaged' | 'scaled' | 'final'> {
  const numbers = (r: StageResult | undefined): StageNumbers | undefined =>
    r && { accuracy: r.accuracy, ece15: r.ece['15'], ece10: r.ece['10'], nll: r.nll, brier: r.brier, temperature: r.temperature };
  const at = (stage: string) => summary.results.find((r) => r.stage === stage && r.temperature === undefined);
  return {
    live: numbers(at(STAGES.live)),
    averaged: numbers(at(STAGES.averaged)),
    scaled: numbers(summary.results.find((r) => r.temperature !== undefined)),
    final: numbers(summary.headline === undefined ? undefined : at(summary.headline)) ?? numbers(summary.results.at(-1)),
  };
}

/** A config's fields by dotted path (configValues: `output` left out), lists and objects as canonical JSON. */
export function flattenConfig(config: RunConfig): Map<string, string | number | boolean | null> {
  return new Map(
    [...configValues(config)].map(([key, value]) => [key, value === null || ['string', 'number', 'boolean'].includes(typeof value) ? (value as string | number | boolean | null) : canonicalJson(value)]),
  );
}

/** Paths whose value is not the same in every config (missing counts as a value), the core ones left out. */
export function differingKeys(configs: readonly Map<string, unknown>[]): string[] {
  const keys = new Set(configs.flatMap((c) => [...c.keys()]));
  return [...keys]
    .filter((k) => !CORE_SETTINGS.includes(k) && new Set(configs.map((c) => canonicalJson(c.get(k) ?? null))).size > 1)
    .sort();
}
