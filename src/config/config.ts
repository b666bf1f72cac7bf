import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { fixturesDir } from '../util/paths';

/**
 * The run configuration: a YAML or JSON file plus command-line overrides, validated field by field
 * (errors name the field path, the bad value and where it came from), completed with defaults, and
 * hashed so that `--resume` can check it continues the same experiment.
 */

/** The fully resolved configuration of one run. Every field has a value (defaults filled in). */
export interface RunConfig {
  /** Seed of every random stream: validation split, shuffling, augmentation, initialisation, masks. */
  readonly seed: number;
  readonly data: DataConfig;
  readonly model: ModelConfig;
  readonly sparse: SparseConfig;
  readonly optimiser: OptimiserConfig;
  readonly train: TrainConfig;
  readonly average: AverageConfig;
  readonly calibrate: CalibrateConfig;
  readonly output: OutputConfig;
}

export interface DataConfig {
  /**
   * How to read `path`: `image-folder` (SPLIT/CLASS/*.jpg|png), `cifar-binary` (official CIFAR-10/100
   * binary release, folder or .tar.gz), `idx` (MNIST-style IDX files), or `auto` to tell from the path.
   */
  readonly format: 'auto' | 'image-folder' | 'cifar-binary' | 'idx';
  /** The data set location; relative paths are resolved against the config file's directory (or the
   * working directory for command-line values). Default: the CIFAR-10 subset under `fixtures/`. */
  readonly path: string;
  /** Fraction of the training split held out for validation (temperature fitting, early numbers), [0, 1). */
  readonly validationFraction: number;
  /** Images per training step. */
  readonly batchSize: number;
  /** Augmentation worker threads; 0 augments on the main thread. */
  readonly workers: number;
  /** Batches prepared ahead of the training stage (the bound on buffered memory). */
  readonly prefetch: number;
  /** Random crop (pad 4) and horizontal flip on training batches; normalisation is always applied. */
  readonly augment: boolean;
}

export interface ModelConfig {
  /** Architecture: `mlp` (LeNet-300-100), `cnn`, `resnet20`, `wrn-16-4`. */
  readonly name: 'mlp' | 'cnn' | 'resnet20' | 'wrn-16-4';
  /** Keep the first layer dense (not masked), as some sparse-training setups do. */
  readonly firstLayerDense: boolean;
}

export interface SparseConfig {
  /** Sparse training method; `cigl` is RigL plus the random weight mask and weight/mask averaging. */
  readonly method: 'dense' | 'static' | 'set' | 'rigl' | 'cigl';
  /** Fraction of maskable weights kept, in (0, 1] (1 − sparsity). Forced to 1 for `dense`. */
  readonly density: number;
  /** How the overall density is spread over layers: `erk` (Erdős–Rényi–Kernel) or `uniform`. */
  readonly distribution: 'uniform' | 'erk';
  /** ΔT: steps between mask updates. */
  readonly updateInterval: number;
  /** f₀: fraction of active weights dropped (and regrown) at the first update; decays with a cosine. */
  readonly dropFraction: number;
  /** T_end as a fraction of all training steps: no mask updates after it. */
  readonly endFraction: number;
  /** CigL's random mask rate p: each active weight is dropped with probability p at every step. */
  readonly randomMaskRate: number;
  /**
   * Mask the classifier (the last dense layer) as well, so that `density` counts every conv and dense
   * weight, as the authors' sparselearning code does. Default false: the classifier stays dense, as in
   * the PyTorch peer and the runs before this option (see the README for the trade-off: with ERK, cnn's
   * wide classifier would take 92% of the budget at density 0.1; for resnet20 and wrn-16-4 ERK keeps the
   * small classifier dense either way).
   */
  readonly maskClassifier: boolean;
}

export interface OptimiserConfig {
  /** Peak learning rate (after warm-up); default 0.1 (the reference), 0.02 for mlp. */
  readonly lr: number;
  /** SGD momentum, [0, 1). */
  readonly momentum: number;
  /** Use Nesterov momentum. */
  readonly nesterov: boolean;
  /** L2 weight decay on conv/dense weights (never biases or BatchNorm). Default 5e-4, 1e-4 for mlp. */
  readonly weightDecay: number;
  /** Epochs of linear learning-rate warm-up from 0; default 1 (a tenth of training when that is shorter). */
  readonly warmupEpochs: number;
  /** After warm-up: `cosine` (to 0 at the end; the default) or `step` (multiply by gamma at each milestone). */
  readonly schedule: 'step' | 'cosine';
  /** Epochs at which the step schedule multiplies the rate by gamma. Default: half and three quarters of training. */
  readonly milestones: readonly number[];
  /** Step-schedule factor, (0, 1]. */
  readonly gamma: number;
}

export interface TrainConfig {
  /** Passes over the training split. */
  readonly epochs: number;
  /** Compute backend: `auto` picks the fastest available (tfjs-node-gpu, tfjs-node, native, wasm, cpu). */
  readonly backend: 'auto' | 'tensorflow' | 'native' | 'wasm' | 'cpu';
  /** Checkpoint after every n steps; 0 turns this trigger off. */
  readonly checkpointEverySteps: number;
  /** Checkpoint when this many minutes have passed since the last one; 0 turns this trigger off. */
  readonly checkpointEveryMinutes: number;
  /** Checkpoint at the end of every n-th epoch; 0 turns this trigger off. */
  readonly checkpointEveryEpochs: number;
  /** Committed checkpoints kept on disk (the oldest are removed). */
  readonly keepCheckpoints: number;
  /**
   * Also measure loss, accuracy and ECE on the test split at every epoch end, for studies of over-fitting
   * (the test split is then watched during training: choose nothing by it).
   */
  readonly testEveryEpoch: boolean;
}

export interface AverageConfig {
  /** Average snapshot weights and masks (CigL). Default: on for `cigl`, off otherwise. */
  readonly enabled: boolean;
  /** First epoch (0-based) whose end-of-epoch snapshot is averaged. Default: from startFraction. */
  readonly startEpoch: number;
  /** Where averaging starts as a fraction of training, (0, 1); only used when startEpoch is not given. */
  readonly startFraction: number;
  /** Snapshots per averaged epoch, evenly spaced, the last at the epoch's end. */
  readonly snapshotsPerEpoch: number;
  /** Reset and recompute BatchNorm statistics after averaging. */
  readonly recomputeBatchNorm: boolean;
}

export interface CalibrateConfig {
  /** Equal-width bin counts for ECE and reliability diagrams; the first is the headline number. */
  readonly bins: readonly number[];
  /** Fit a temperature on the validation split and report metrics after scaling too. */
  readonly temperatureScaling: boolean;
  /**
   * Split the final results (summary.json) are measured on: `test`, or `validation` to choose
   * hyper-parameters (e.g. CigL's p) without looking at the test split.
   */
  readonly split: 'test' | 'validation';
}

export interface OutputConfig {
  /** Directory that holds one directory per run; relative paths as for data.path. */
  readonly runsDir: string;
  /** Name of this run's directory; generated (method, model, density, seed, time) when not given. */
  readonly runName?: string;
}

/** One problem with a configuration value. */
export interface ConfigIssue {
  /** Dotted field path, e.g. `sparse.density` or `calibrate.bins[1]`. */
  readonly path: string;
  readonly message: string;
  /** Where the value came from: the config file, a flag, or the default. */
  readonly origin?: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(
      issues.length === 1
        ? `invalid config: ${formatIssue(issues[0])}`
        : `invalid config (${issues.length} problems):\n${issues.map((i) => `  - ${formatIssue(i)}`).join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

/** A value given on the command line for a config field, as typed. */
export interface ConfigOverride {
  readonly path: string;
  readonly raw: string;
  /** How it was given, for error messages, e.g. `--train.epochs` or `--set train.epochs=3`. */
  readonly origin: string;
}

export interface ConfigSources {
  /** The config file (YAML or JSON) to start from. */
  readonly file?: string;
  /** Parsed content to start from instead of reading `file` (e.g. a saved config.json). */
  readonly base?: unknown;
  /** Name of `base` in error messages. */
  readonly baseOrigin?: string;
  readonly overrides?: readonly ConfigOverride[];
  /** Resolves relative paths given on the command line; default process.cwd(). */
  readonly cwd?: string;
  /** Resolves relative paths in `base`; default: the config file's directory, else `cwd`. */
  readonly baseDir?: string;
}

// ---------------------------------------------------------------------------------------------------
// Schema

type Resolved = Record<string, Record<string, unknown> | unknown>;
type Derive = (config: Resolved) => unknown;

interface LeafBase {
  readonly doc: string;
  /** A constant, or computed from other (non-derived) fields once they are known. */
  readonly default?: unknown;
  readonly derive?: Derive;
  readonly optional?: boolean;
}
type Leaf = LeafBase &
  (
    | { readonly kind: 'int'; readonly min: number; readonly max?: number }
    | { readonly kind: 'number'; readonly interval: Interval }
    | { readonly kind: 'boolean' }
    | { readonly kind: 'enum'; readonly values: readonly string[] }
    | { readonly kind: 'string'; readonly pattern: RegExp; readonly patternHint: string }
    | { readonly kind: 'path' }
    | { readonly kind: 'intList'; readonly min: number; readonly minItems: number }
  );

/** [low, high] with open/closed ends, e.g. (0, 1]. */
interface Interval {
  readonly low: number;
  readonly high: number;
  readonly lowOpen: boolean;
  readonly highOpen: boolean;
}
const interval = (spec: string): Interval => {
  const m = /^([[(])\s*(\S+),\s*(\S+)\s*([\])])$/.exec(spec);
  if (!m) throw new Error(`bad interval ${spec}`);
  return { low: Number(m[2]), high: Number(m[3]), lowOpen: m[1] === '(', highOpen: m[4] === ')' };
};

const epochsOf = (c: Resolved) => (c.train as { epochs: number }).epochs;

/** A run directory name: one path segment that can never be `.`, `..` or contain a separator. */
export const RUN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const RUN_NAME_HINT = 'letters, digits, ".", "_" or "-", starting with a letter or digit, at most 100 characters';

const SCHEMA: Readonly<Record<string, Leaf | Readonly<Record<string, Leaf>>>> = {
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, default: 0, doc: 'seed of every random stream' },
  data: {
    format: { kind: 'enum', values: ['auto', 'image-folder', 'cifar-binary', 'idx'], default: 'auto', doc: 'how to read data.path' },
    path: { kind: 'path', default: path.join(fixturesDir, 'cifar10-subset'), doc: 'data set location' },
    validationFraction: { kind: 'number', interval: interval('[0, 1)'), default: 0.1, doc: 'training fraction held out' },
    batchSize: { kind: 'int', min: 1, default: 128, doc: 'images per step' },
    workers: { kind: 'int', min: 0, max: 256, default: 1, doc: 'augmentation worker threads (0: main thread)' },
    prefetch: { kind: 'int', min: 1, default: 4, doc: 'batches prepared ahead' },
    augment: { kind: 'boolean', default: true, doc: 'random crop + flip' },
  },
  model: {
    name: { kind: 'enum', values: ['mlp', 'cnn', 'resnet20', 'wrn-16-4'], default: 'cnn', doc: 'architecture' },
    firstLayerDense: { kind: 'boolean', default: false, doc: 'never mask the first layer' },
  },
  sparse: {
    method: { kind: 'enum', values: ['dense', 'static', 'set', 'rigl', 'cigl'], default: 'cigl', doc: 'sparse training method' },
    density: { kind: 'number', interval: interval('(0, 1]'), default: 0.1, doc: 'fraction of weights kept (1 for dense)' },
    distribution: { kind: 'enum', values: ['uniform', 'erk'], default: 'erk', doc: 'per-layer density rule' },
    updateInterval: { kind: 'int', min: 1, default: 100, doc: 'ΔT, steps between mask updates' },
    dropFraction: { kind: 'number', interval: interval('(0, 1]'), default: 0.3, doc: 'f₀, initial drop fraction' },
    endFraction: { kind: 'number', interval: interval('(0, 1]'), default: 0.75, doc: 'T_end as a fraction of training' },
    randomMaskRate: { kind: 'number', interval: interval('[0, 1)'), default: 0.01, doc: 'CigL random mask rate p' },
    maskClassifier: { kind: 'boolean', default: false, doc: 'mask the classifier (last dense layer) too, as the authors\' code does' },
  },
  optimiser: {
    lr: {
      kind: 'number',
      interval: interval('(0, Infinity)'),
      // Measured (10 epochs of full CIFAR-10 with augmentation, cosine after one warm-up epoch, seed 0):
      // cnn 79.8% at 0.1 (78.8% at 0.05); mlp 48.0% at 0.02 (47.6% at 0.01, 46.6% at 0.05). The warm-up is
      // what lets cnn's 4096-wide classifier start at 0.1.
      derive: (c) => ((c.model as ModelConfig).name === 'mlp' ? 0.02 : 0.1),
      doc: 'peak learning rate (default 0.02 for mlp, else 0.1)',
    },
    momentum: { kind: 'number', interval: interval('[0, 1)'), default: 0.9, doc: 'SGD momentum' },
    nesterov: { kind: 'boolean', default: true, doc: 'Nesterov momentum' },
    weightDecay: {
      kind: 'number',
      interval: interval('[0, Infinity)'),
      // cnn: 78.8% with 5e-4 against 78.3% with 1e-4 (lr 0.05, same budget).
      derive: (c) => ((c.model as ModelConfig).name === 'mlp' ? 1e-4 : 5e-4),
      doc: 'weight decay (default 1e-4 for mlp, else 5e-4)',
    },
    warmupEpochs: {
      kind: 'number',
      interval: interval('[0, Infinity)'),
      derive: (c) => Math.min(1, epochsOf(c) / 10),
      doc: 'linear warm-up epochs (default 1, or a tenth of training when shorter)',
    },
    schedule: { kind: 'enum', values: ['step', 'cosine'], default: 'cosine', doc: 'decay after warm-up' },
    milestones: {
      kind: 'intList',
      min: 1,
      minItems: 0,
      derive: (c) => [...new Set([Math.floor(epochsOf(c) / 2), Math.floor((3 * epochsOf(c)) / 4)])].filter((e) => e >= 1),
      doc: 'step-decay epochs (default: 1/2 and 3/4 of training)',
    },
    gamma: { kind: 'number', interval: interval('(0, 1]'), default: 0.1, doc: 'step-decay factor' },
  },
  train: {
    epochs: { kind: 'int', min: 1, default: 10, doc: 'passes over the training split' },
    backend: { kind: 'enum', values: ['auto', 'tensorflow', 'native', 'wasm', 'cpu'], default: 'auto', doc: 'compute backend' },
    checkpointEverySteps: { kind: 'int', min: 0, default: 0, doc: 'checkpoint every n steps (0: off)' },
    checkpointEveryMinutes: { kind: 'number', interval: interval('[0, Infinity)'), default: 10, doc: 'checkpoint every n minutes (0: off)' },
    checkpointEveryEpochs: { kind: 'int', min: 0, default: 1, doc: 'checkpoint every n epochs (0: off)' },
    keepCheckpoints: { kind: 'int', min: 1, default: 2, doc: 'checkpoints kept on disk' },
    testEveryEpoch: { kind: 'boolean', default: false, doc: 'also evaluate the test split at every epoch end (over-fitting studies)' },
  },
  average: {
    enabled: { kind: 'boolean', derive: (c) => (c.sparse as SparseConfig).method === 'cigl', doc: 'weight & mask averaging (default: on for cigl)' },
    startEpoch: {
      kind: 'int',
      min: 0,
      derive: (c) => Math.min(epochsOf(c) - 1, Math.floor((c.average as AverageConfig).startFraction * epochsOf(c))),
      doc: 'first averaged epoch, 0-based (default: from startFraction)',
    },
    startFraction: { kind: 'number', interval: interval('(0, 1)'), default: 0.8, doc: 'averaging start as a fraction of training' },
    snapshotsPerEpoch: { kind: 'int', min: 1, default: 1, doc: 'snapshots per averaged epoch, evenly spaced, the last at its end' },
    recomputeBatchNorm: { kind: 'boolean', default: true, doc: 'recompute BatchNorm statistics after averaging' },
  },
  calibrate: {
    bins: { kind: 'intList', min: 2, minItems: 1, default: [15, 10], doc: 'ECE bin counts' },
    temperatureScaling: { kind: 'boolean', default: true, doc: 'fit a temperature on validation' },
    split: { kind: 'enum', values: ['test', 'validation'], default: 'test', doc: 'split the final results are measured on' },
  },
  output: {
    runsDir: { kind: 'path', default: 'runs', doc: 'directory of run directories' },
    runName: {
      kind: 'string',
      optional: true,
      pattern: RUN_NAME_PATTERN,
      patternHint: RUN_NAME_HINT,
      doc: 'run directory name (default: generated)',
    },
  },
};

/** Fields left out of the config hash: where a run is written does not change what it computes. */
const UNHASHED_SECTIONS = ['output'];

function isLeaf(node: Leaf | Readonly<Record<string, Leaf>>): node is Leaf {
  return typeof (node as Leaf).kind === 'string' && typeof (node as Leaf).doc === 'string';
}

/** Every config field as `section.field` (or `seed`) with its leaf description. */
function leaves(): { path: string; section?: string; field: string; leaf: Leaf }[] {
  return Object.entries(SCHEMA).flatMap(([key, node]) =>
    isLeaf(node) ? [{ path: key, field: key, leaf: node }] : Object.entries(node).map(([field, leaf]) => ({ path: `${key}.${field}`, section: key, field, leaf })),
  );
}

/** Whether `fieldPath` (e.g. `train.epochs`) names a config field. */
export function isConfigField(fieldPath: string): boolean {
  return leaves().some((l) => l.path === fieldPath);
}

/** Whether `fieldPath` names a true/false field (a bare `--flag` then means true). */
export function isBooleanField(fieldPath: string): boolean {
  return leaves().some((l) => l.path === fieldPath && l.leaf.kind === 'boolean');
}

/** The closest field name, for "did you mean" hints. */
export function suggestField(fieldPath: string): string | undefined {
  return closest(fieldPath, leaves().map((l) => l.path));
}

/** One line per field (path, default, description) for `--help`. */
export function describeConfigFields(): { path: string; type: string; default: string; doc: string }[] {
  return leaves().map(({ path: p, leaf }) => ({
    path: p,
    type: describeType(leaf),
    default: leaf.derive ? '(derived)' : leaf.default === undefined ? '(none)' : JSON.stringify(leaf.default),
    doc: leaf.doc,
  }));
}

// ---------------------------------------------------------------------------------------------------
// Loading and resolving

/** Reads a YAML or JSON config file; syntax errors name the file and line. */
export function loadConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: `cannot read config file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` }]);
  }
  try {
    return parseYaml(text, { prettyErrors: true }) ?? {};
  } catch (err) {
    throw new ConfigError([{ path: '(file)', message: `config file ${file} is not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}` }]);
  }
}

/** Reads, merges, validates and completes a configuration. Throws ConfigError listing every problem. */
export function resolveConfig(sources: ConfigSources = {}): RunConfig {
  const cwd = sources.cwd ?? process.cwd();
  const issues: ConfigIssue[] = [];
  const fileOrigin = sources.file ? `config file ${sources.file}` : (sources.baseOrigin ?? 'base config');
  const input = sources.base !== undefined ? sources.base : sources.file ? loadConfigFile(sources.file) : {};
  const fileDir = sources.baseDir ?? (sources.file ? path.dirname(path.resolve(cwd, sources.file)) : cwd);

  // Raw values by field path, with where each came from.
  const raw = new Map<string, { value: unknown; origin: string; baseDir: string }>();
  collectRaw(input, fileOrigin, fileDir, raw, issues);
  for (const o of sources.overrides ?? []) {
    const entry = leaves().find((l) => l.path === o.path);
    if (!entry) {
      const hint = suggestField(o.path);
      issues.push({ path: o.path, message: `unknown field${hint ? ` (did you mean ${hint}?)` : ''}`, origin: o.origin });
      continue;
    }
    raw.set(o.path, { value: parseOverrideValue(o.raw, entry.leaf), origin: o.origin, baseDir: cwd });
  }

  const config: Record<string, Record<string, unknown> | unknown> = {};
  const set = (section: string | undefined, field: string, value: unknown) => {
    if (section === undefined) config[field] = value;
    else ((config[section] ??= {}) as Record<string, unknown>)[field] = value;
  };
  const deferred: ReturnType<typeof leaves> = [];
  for (const l of leaves()) {
    const given = raw.get(l.path);
    if (given === undefined || given.value === null) {
      if (l.leaf.derive) deferred.push(l);
      else if (l.leaf.default !== undefined) set(l.section, l.field, normalise(l.leaf, l.leaf.default, cwd));
      else if (!l.leaf.optional) issues.push({ path: l.path, message: 'is required' });
      continue;
    }
    const problem = check(l.leaf, given.value, l.path);
    if (problem) issues.push({ ...problem, origin: given.origin });
    else set(l.section, l.field, normalise(l.leaf, given.value, given.baseDir));
  }
  if (issues.length > 0) throw new ConfigError(issues);
  for (const l of deferred) set(l.section, l.field, l.leaf.derive!(config));

  const resolved = config as unknown as RunConfig;
  issues.push(...crossCheck(resolved, raw));
  if (issues.length > 0) throw new ConfigError(issues);
  if (resolved.sparse.method === 'dense') (resolved.sparse as { density: number }).density = 1;
  return resolved;
}

/** Sorted-key JSON without whitespace: the same config always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 (hex) of the canonical JSON of everything except `output` (where the run is written). */
export function configHash(config: RunConfig): string {
  const hashed = Object.fromEntries(Object.entries(config).filter(([k]) => !UNHASHED_SECTIONS.includes(k)));
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex');
}

/** Leaf-by-leaf differences that change the hash (so, not `output`). */
export function configDiff(before: RunConfig, after: RunConfig): { path: string; before: unknown; after: unknown }[] {
  return leaves()
    .filter((l) => !UNHASHED_SECTIONS.includes(l.section ?? ''))
    .flatMap((l) => {
      const a = l.section ? (before as unknown as Record<string, Record<string, unknown>>)[l.section]?.[l.field] : (before as unknown as Record<string, unknown>)[l.field];
      const b = l.section ? (after as unknown as Record<string, Record<string, unknown>>)[l.section]?.[l.field] : (after as unknown as Record<string, unknown>)[l.field];
      return canonicalJson(a) === canonicalJson(b) ? [] : [{ path: l.path, before: a, after: b }];
    });
}

// ---------------------------------------------------------------------------------------------------

function collectRaw(
  input: unknown,
  origin: string,
  baseDir: string,
  raw: Map<string, { value: unknown; origin: string; baseDir: string }>,
  issues: ConfigIssue[],
): void {
  if (!isPlainObject(input)) {
    issues.push({ path: '(top level)', message: `must be a mapping of sections, got ${show(input)}`, origin });
    return;
  }
  for (const [key, value] of Object.entries(input)) {
    const node = SCHEMA[key];
    if (node === undefined) {
      const hint = closest(key, Object.keys(SCHEMA));
      issues.push({ path: key, message: `unknown field${hint ? ` (did you mean ${hint}?)` : ''}`, origin });
    } else if (isLeaf(node)) {
      raw.set(key, { value, origin, baseDir });
    } else if (!isPlainObject(value)) {
      if (value !== null) issues.push({ path: key, message: `must be a mapping of fields, got ${show(value)}`, origin });
    } else {
      for (const [field, fieldValue] of Object.entries(value)) {
        if (!(field in node)) {
          const hint = closest(field, Object.keys(node));
          issues.push({ path: `${key}.${field}`, message: `unknown field${hint ? ` (did you mean ${key}.${hint}?)` : ''}`, origin });
        } else {
          raw.set(`${key}.${field}`, { value: fieldValue, origin, baseDir });
        }
      }
    }
  }
}

/** Command-line text to a value: YAML scalars (3, 0.1, 1e-4, true), comma or [..] lists for list fields. */
function parseOverrideValue(text: string, leaf: Leaf): unknown {
  if (leaf.kind === 'string' || leaf.kind === 'path') return text;
  if (leaf.kind === 'intList' && !text.trim().startsWith('[')) {
    return text.trim() === '' ? [] : text.split(',').map((part) => parseScalar(part.trim()));
  }
  return parseScalar(text);
}

function parseScalar(text: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

function check(leaf: Leaf, value: unknown, at: string): Omit<ConfigIssue, 'origin'> | undefined {
  const fail = (expected: string) => ({ path: at, message: `must be ${expected}, got ${show(value)}` });
  switch (leaf.kind) {
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && value >= leaf.min && value <= (leaf.max ?? Infinity)
        ? undefined
        : fail(`an integer ${leaf.max === undefined ? `>= ${leaf.min}` : `in [${leaf.min}, ${leaf.max}]`}`);
    case 'number':
      return typeof value === 'number' && inInterval(value, leaf.interval) ? undefined : fail(`a number in ${showInterval(leaf.interval)}`);
    case 'boolean':
      return typeof value === 'boolean' ? undefined : fail('true or false');
    case 'enum': {
      if (typeof value === 'string' && leaf.values.includes(value)) return undefined;
      const hint = typeof value === 'string' ? closest(value, leaf.values) : undefined;
      return { path: at, message: `must be one of ${leaf.values.join(', ')}; got ${show(value)}${hint ? ` (did you mean ${hint}?)` : ''}` };
    }
    case 'string':
      return typeof value === 'string' && leaf.pattern.test(value) ? undefined : fail(leaf.patternHint);
    case 'path':
      return typeof value === 'string' && value.length > 0 ? undefined : fail('a non-empty path');
    case 'intList': {
      if (!Array.isArray(value)) return fail(`a list of integers >= ${leaf.min}`);
      if (value.length < leaf.minItems) return fail(`a list of at least ${leaf.minItems} integer${leaf.minItems === 1 ? '' : 's'}`);
      const bad = value.findIndex((v) => !(typeof v === 'number' && Number.isInteger(v) && v >= leaf.min));
      return bad < 0 ? undefined : { path: `${at}[${bad}]`, message: `must be an integer >= ${leaf.min}, got ${show(value[bad])}` };
    }
  }
}

function normalise(leaf: Leaf, value: unknown, baseDir: string): unknown {
  if (leaf.kind === 'path') return path.resolve(baseDir, value as string);
  if (leaf.kind === 'intList') return [...(value as number[])];
  return value;
}

function crossCheck(c: RunConfig, raw: Map<string, { origin: string }>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = (p: string, message: string) => issues.push({ path: p, message, origin: raw.get(p)?.origin ?? 'default' });
  const { epochs } = c.train;
  const m = c.optimiser.milestones;
  m.forEach((e, i) => {
    if (e >= epochs) at('optimiser.milestones', `[${i}] = ${e} must be below train.epochs (${epochs})`);
    if (i > 0 && e <= m[i - 1]) at('optimiser.milestones', `must be strictly increasing, got ${show(m)}`);
  });
  if (c.optimiser.warmupEpochs >= epochs) at('optimiser.warmupEpochs', `must be below train.epochs (${epochs}), got ${c.optimiser.warmupEpochs}`);
  if (c.average.startEpoch >= epochs) at('average.startEpoch', `must be below train.epochs (${epochs}), got ${c.average.startEpoch}`);
  if (c.calibrate.split === 'validation' && c.calibrate.temperatureScaling) {
    at('calibrate.split', 'is validation, so calibrate.temperatureScaling must be false (the temperature is fitted on the validation split)');
  }
  return issues;
}

function inInterval(v: number, i: Interval): boolean {
  return !Number.isNaN(v) && (i.lowOpen ? v > i.low : v >= i.low) && (i.highOpen ? v < i.high : v <= i.high);
}

function showInterval(i: Interval): string {
  if (i.high === Infinity) return i.lowOpen ? `(${i.low}, ∞) (> ${i.low})` : `[${i.low}, ∞) (>= ${i.low})`;
  return `${i.lowOpen ? '(' : '['}${i.low}, ${i.high}${i.highOpen ? ')' : ']'}`;
}

function describeType(leaf: Leaf): string {
  switch (leaf.kind) {
    case 'int':
      return leaf.max === undefined ? `int >= ${leaf.min}` : `int in [${leaf.min}, ${leaf.max}]`;
    case 'number':
      return `number in ${showInterval(leaf.interval)}`;
    case 'boolean':
      return 'true|false';
    case 'enum':
      return leaf.values.join('|');
    case 'string':
      return 'name';
    case 'path':
      return 'path';
    case 'intList':
      return `list of int >= ${leaf.min}`;
  }
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function formatIssue(i: ConfigIssue): string {
  return `${i.path} ${i.message}${i.origin ? ` (from ${i.origin})` : ''}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The candidate within edit distance 3 (and less than half the word) of `word`, if any. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.min(3, Math.floor(word.length / 2)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}
