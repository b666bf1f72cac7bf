import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BACKEND_PREFERENCES } from '../compute/backend-names';
import { DATA_FORMATS } from '../data/types';
import { MODEL_NAMES } from '../models/zoo';
import { DENSITY_DISTRIBUTIONS } from '../sparse/density';
import { SPARSE_METHOD_NAMES } from '../sparse/method';
import { fixturesDir } from '../util/paths';

/**
 * The run configuration: a YAML or JSON file plus command-line overrides, validated field by field
 * (errors name the field path, the bad value and where it came from), completed with defaults, and
 * hashed so that `--resume` can check it continues the same experiment.
 */

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
// Schema: every field once. Each field is a zod schema (the value's constraints) plus its help line and
// its default (a constant, or derived from other fields once they are known). The TypeScript types, the
// validation, `--help`, the JSON Schema (configJsonSchema) and the hash's field list all come from it.

type Resolved = Record<string, Record<string, unknown> | unknown>;
type Derive = (config: Resolved) => unknown;
type Kind = 'int' | 'number' | 'boolean' | 'enum' | 'string' | 'path' | 'intList';

/** One config field. */
export interface ConfigField<S extends z.ZodType = z.ZodType> {
  readonly schema: S;
  readonly kind: Kind;
  /** The field's type in `--help`, e.g. `int >= 1` or `number in (0, 1]`. */
  readonly type: string;
  /** What a valid value is, in error messages: "must be <expected>, got ...". */
  readonly expected: string;
  /** One line for `--help` and the JSON Schema. */
  readonly doc: string;
  /** A constant default. */
  readonly default?: z.output<S>;
  /** A default computed from other (non-derived) fields once they are known. */
  readonly derive?: Derive;
  /** May stay unset (no default). */
  readonly optional?: boolean;
  readonly values?: readonly string[];
  readonly min?: number;
  readonly minItems?: number;
}

type Extra<S extends z.ZodType> = Pick<ConfigField<S>, 'doc' | 'default' | 'derive' | 'optional'>;

/** [low, high] with open/closed ends, written as in mathematics, e.g. `(0, 1]` or `[0, Infinity)`. */
function interval(spec: string): { low: number; high: number; lowOpen: boolean; highOpen: boolean; text: string } {
  const m = /^([[(])\s*(\S+),\s*(\S+)\s*([\])])$/.exec(spec);
  if (!m) throw new Error(`bad interval ${spec}`);
  const [low, high, lowOpen, highOpen] = [Number(m[2]), Number(m[3]), m[1] === '(', m[4] === ')'];
  const text = high === Infinity ? (lowOpen ? `(${low}, ∞) (> ${low})` : `[${low}, ∞) (>= ${low})`) : `${lowOpen ? '(' : '['}${low}, ${high}${highOpen ? ')' : ']'}`;
  return { low, high, lowOpen, highOpen, text };
}

const int = (min: number, max: number | undefined, extra: Extra<z.ZodNumber>): ConfigField<z.ZodNumber> => {
  let schema = z.number().int().gte(min);
  if (max !== undefined) schema = schema.lte(max);
  const range = max === undefined ? `>= ${min}` : `in [${min}, ${max}]`;
  return { schema, kind: 'int', type: `int ${range}`, expected: `an integer ${range}`, ...extra };
};
const number = (spec: string, extra: Extra<z.ZodNumber>): ConfigField<z.ZodNumber> => {
  const i = interval(spec);
  let schema = i.lowOpen ? z.number().gt(i.low) : z.number().gte(i.low);
  if (i.high !== Infinity) schema = i.highOpen ? schema.lt(i.high) : schema.lte(i.high);
  return { schema, kind: 'number', type: `number in ${i.text}`, expected: `a number in ${i.text}`, ...extra };
};
const boolean = (extra: Extra<z.ZodBoolean>): ConfigField<z.ZodBoolean> => ({ schema: z.boolean(), kind: 'boolean', type: 'true|false', expected: 'true or false', ...extra });
const oneOf = <const V extends readonly [string, ...string[]]>(values: V, extra: Extra<z.ZodEnum<{ [K in V[number]]: K }>>): ConfigField<z.ZodEnum<{ [K in V[number]]: K }>> => ({
  schema: z.enum(values),
  kind: 'enum',
  type: values.join('|'),
  expected: `one of ${values.join(', ')}`,
  values,
  ...extra,
});
const name = (pattern: RegExp, hint: string, extra: Extra<z.ZodString>): ConfigField<z.ZodString> => ({ schema: z.string().regex(pattern), kind: 'string', type: 'name', expected: hint, ...extra });
const pathField = (extra: Extra<z.ZodString>): ConfigField<z.ZodString> => ({ schema: z.string().min(1), kind: 'path', type: 'path', expected: 'a non-empty path', ...extra });
const intList = (min: number, minItems: number, extra: Extra<z.ZodArray<z.ZodNumber>>): ConfigField<z.ZodArray<z.ZodNumber>> => ({
  schema: z.array(z.number().int().gte(min)).min(minItems),
  kind: 'intList',
  type: `list of int >= ${min}`,
  expected: `a list of integers >= ${min}`,
  min,
  minItems,
  ...extra,
});

const epochsOf = (c: Resolved) => (c.train as { epochs: number }).epochs;

/** A run directory name: one path segment that can never be `.`, `..` or contain a separator. */
export const RUN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
export const RUN_NAME_HINT = 'letters, digits, ".", "_" or "-", starting with a letter or digit, at most 100 characters';

/** The config's sections and fields (`seed` is a top-level field). The documentation of each is its TSDoc. */
export const CONFIG_FIELDS = {
  /** Seed of every random stream: validation split, shuffling, augmentation, initialisation, masks. */
  seed: int(0, 2 ** 32 - 1, { default: 0, doc: 'seed of every random stream' }),
  data: {
    /**
     * How to read `path`: `image-folder` (SPLIT/CLASS/*.jpg|png), `cifar-binary` (official CIFAR-10/100
     * binary release, folder or .tar.gz), `idx` (MNIST-style IDX files), or `auto` to tell from the path.
     */
    format: oneOf(DATA_FORMATS, { default: 'auto', doc: 'how to read data.path' }),
    /**
     * The data set location; relative paths are resolved against the config file's directory (or the
     * working directory for command-line values). Default: the CIFAR-10 subset under the package's `fixtures/`.
     */
    path: pathField({ default: path.join(fixturesDir, 'cifar10-subset'), doc: 'data set location' }),
    /** Fraction of the training split held out for validation (temperature fitting, early numbers), [0, 1). */
    validationFraction: number('[0, 1)', { default: 0.1, doc: 'training fraction held out' }),
    /**
     * Keep only this many images of the training part (after the validation hold-out), stratified by
     * class and chosen by the seed; absent: all. A small training set lets a small model reach the
     * over-fit regime (training accuracy near 100%) on a small compute budget.
     */
    trainImages: int(1, undefined, { optional: true, doc: 'training images kept, stratified (default: all)' }),
    /** Images per training step. */
    batchSize: int(1, undefined, { default: 128, doc: 'images per step' }),
    /** Augmentation worker threads; 0 augments on the main thread. */
    workers: int(0, 256, { default: 1, doc: 'augmentation worker threads (0: main thread)' }),
    /** Batches prepared ahead of the training stage (the bound on buffered memory). */
    prefetch: int(1, undefined, { default: 4, doc: 'batches prepared ahead' }),
    /** Random crop (pad 4) and horizontal flip on training batches; normalisation is always applied. */
    augment: boolean({ default: true, doc: 'random crop + flip' }),
  },
  model: {
    /** Architecture: `mlp` (LeNet-300-100), `cnn`, `resnet20`, `wrn-16-4`. */
    name: oneOf(MODEL_NAMES, { default: 'cnn', doc: 'architecture' }),
    /** Keep the first layer dense (not masked), as some sparse-training setups do. */
    firstLayerDense: boolean({ default: false, doc: 'never mask the first layer' }),
  },
  sparse: {
    /** Sparse training method; `cigl` is RigL plus the random weight mask and weight/mask averaging. */
    method: oneOf(SPARSE_METHOD_NAMES, { default: 'cigl', doc: 'sparse training method' }),
    /** Fraction of maskable weights kept, in (0, 1] (1 − sparsity). Forced to 1 for `dense`. */
    density: number('(0, 1]', { default: 0.1, doc: 'fraction of weights kept (1 for dense)' }),
    /** How the overall density is spread over layers: `erk` (Erdős–Rényi–Kernel) or `uniform`. */
    distribution: oneOf(DENSITY_DISTRIBUTIONS, { default: 'erk', doc: 'per-layer density rule' }),
    /** ΔT: steps between mask updates. */
    updateInterval: int(1, undefined, { default: 100, doc: 'ΔT, steps between mask updates' }),
    /** f₀: fraction of active weights dropped (and regrown) at the first update; decays with a cosine. */
    dropFraction: number('(0, 1]', { default: 0.3, doc: 'f₀, initial drop fraction' }),
    /** T_end as a fraction of all training steps: no mask updates after it. */
    endFraction: number('(0, 1]', { default: 0.75, doc: 'T_end as a fraction of training' }),
    /** CigL's random mask rate p: each active weight is dropped with probability p at every step. */
    randomMaskRate: number('[0, 1)', { default: 0.01, doc: 'CigL random mask rate p' }),
    /**
     * Mask the classifier (the last dense layer) as well, so that `density` counts every conv and dense
     * weight, as the authors' sparselearning code does. Default false: the classifier stays dense, as in
     * the PyTorch peer and the runs before this option (see the README for the trade-off: with ERK, cnn's
     * wide classifier would take 92% of the budget at density 0.1; for resnet20 and wrn-16-4 ERK keeps the
     * small classifier dense either way).
     */
    maskClassifier: boolean({ default: false, doc: "mask the classifier (last dense layer) too, as the authors' code does" }),
  },
  optimiser: {
    /** Peak learning rate (after warm-up); default 0.1 (the reference), 0.02 for mlp. */
    lr: number('(0, Infinity)', {
      // Measured (10 epochs of full CIFAR-10 with augmentation, cosine after one warm-up epoch, seed 0):
      // cnn 79.8% at 0.1 (78.8% at 0.05); mlp 48.0% at 0.02 (47.6% at 0.01, 46.6% at 0.05). The warm-up is
      // what lets cnn's 4096-wide classifier start at 0.1.
      derive: (c) => ((c.model as { name: string }).name === 'mlp' ? 0.02 : 0.1),
      doc: 'peak learning rate (default 0.02 for mlp, else 0.1)',
    }),
    /** SGD momentum, [0, 1). */
    momentum: number('[0, 1)', { default: 0.9, doc: 'SGD momentum' }),
    /** Use Nesterov momentum. */
    nesterov: boolean({ default: true, doc: 'Nesterov momentum' }),
    /** L2 weight decay on conv/dense weights (never biases or BatchNorm). Default 5e-4, 1e-4 for mlp. */
    weightDecay: number('[0, Infinity)', {
      // cnn: 78.8% with 5e-4 against 78.3% with 1e-4 (lr 0.05, same budget).
      derive: (c) => ((c.model as { name: string }).name === 'mlp' ? 1e-4 : 5e-4),
      doc: 'weight decay (default 1e-4 for mlp, else 5e-4)',
    }),
    /** Epochs of linear learning-rate warm-up from 0; default 1 (a tenth of training when that is shorter). */
    warmupEpochs: number('[0, Infinity)', { derive: (c) => Math.min(1, epochsOf(c) / 10), doc: 'linear warm-up epochs (default 1, or a tenth of training when shorter)' }),
    /** After warm-up: `cosine` (to 0 at the end; the default) or `step` (multiply by gamma at each milestone). */
    schedule: oneOf(['step', 'cosine'], { default: 'cosine', doc: 'decay after warm-up' }),
    /** Epochs at which the step schedule multiplies the rate by gamma. Default: half and three quarters of training. */
    milestones: intList(1, 0, {
      derive: (c) => [...new Set([Math.floor(epochsOf(c) / 2), Math.floor((3 * epochsOf(c)) / 4)])].filter((e) => e >= 1),
      doc: 'step-decay epochs (default: 1/2 and 3/4 of training)',
    }),
    /** Step-schedule factor, (0, 1]. */
    gamma: number('(0, 1]', { default: 0.1, doc: 'step-decay factor' }),
  },
  train: {
    /** Passes over the training split. */
    epochs: int(1, undefined, { default: 10, doc: 'passes over the training split' }),
    /** Compute backend: `auto` picks the fastest available (tfjs-node-gpu, tfjs-node, native, wasm, cpu). */
    backend: oneOf(BACKEND_PREFERENCES, { default: 'auto', doc: 'compute backend' }),
    /** Checkpoint after every n steps; 0 turns this trigger off. */
    checkpointEverySteps: int(0, undefined, { default: 0, doc: 'checkpoint every n steps (0: off)' }),
    /** Checkpoint when this many minutes have passed since the last one; 0 turns this trigger off. */
    checkpointEveryMinutes: number('[0, Infinity)', { default: 10, doc: 'checkpoint every n minutes (0: off)' }),
    /** Checkpoint at the end of every n-th epoch; 0 turns this trigger off. */
    checkpointEveryEpochs: int(0, undefined, { default: 1, doc: 'checkpoint every n epochs (0: off)' }),
    /** Committed checkpoints kept on disk (the oldest are removed). */
    keepCheckpoints: int(1, undefined, { default: 2, doc: 'checkpoints kept on disk' }),
    /**
     * Also measure loss, accuracy and ECE on the test split at every epoch end, for studies of over-fitting
     * (the test split is then watched during training: choose nothing by it).
     */
    testEveryEpoch: boolean({ default: false, doc: 'also evaluate the test split at every epoch end (over-fitting studies)' }),
  },
  average: {
    /** Average snapshot weights and masks (CigL). Default: on for `cigl`, off otherwise. */
    enabled: boolean({ derive: (c) => (c.sparse as { method: string }).method === 'cigl', doc: 'weight & mask averaging (default: on for cigl)' }),
    /** First epoch (0-based) whose end-of-epoch snapshot is averaged. Default: from startFraction. */
    startEpoch: int(0, undefined, {
      derive: (c) => Math.min(epochsOf(c) - 1, Math.floor((c.average as { startFraction: number }).startFraction * epochsOf(c))),
      doc: 'first averaged epoch, 0-based (default: from startFraction)',
    }),
    /** Where averaging starts as a fraction of training, (0, 1); only used when startEpoch is not given. */
    startFraction: number('(0, 1)', { default: 0.8, doc: 'averaging start as a fraction of training' }),
    /** Snapshots per averaged epoch, evenly spaced, the last at the epoch's end. */
    snapshotsPerEpoch: int(1, undefined, { default: 1, doc: 'snapshots per averaged epoch, evenly spaced, the last at its end' }),
    /** Reset and recompute BatchNorm statistics after averaging. */
    recomputeBatchNorm: boolean({ default: true, doc: 'recompute BatchNorm statistics after averaging' }),
  },
  calibrate: {
    /** Equal-width bin counts for ECE and reliability diagrams; the first is the headline number. */
    bins: intList(2, 1, { default: [15, 10], doc: 'ECE bin counts' }),
    /** Fit a temperature on the validation split and report metrics after scaling too. */
    temperatureScaling: boolean({ default: true, doc: 'fit a temperature on validation' }),
    /**
     * Split the final results (summary.json) are measured on: `test`, or `validation` to choose
     * hyper-parameters (e.g. CigL's p) without looking at the test split.
     */
    split: oneOf(['test', 'validation'], { default: 'test', doc: 'split the final results are measured on' }),
  },
  output: {
    /** Directory that holds one directory per run; relative paths as for data.path. */
    runsDir: pathField({ default: 'runs', doc: 'directory of run directories' }),
    /** Name of this run's directory; generated (method, model, density, seed, time) when not given. */
    runName: name(RUN_NAME_PATTERN, RUN_NAME_HINT, { optional: true, doc: 'run directory name (default: generated)' }),
  },
} as const;

type Fields = typeof CONFIG_FIELDS;
type ValueOf<F> = F extends ConfigField<infer S> ? (z.output<S> extends readonly (infer E)[] ? readonly E[] : z.output<S>) : never;
type Section<S> = { readonly [K in keyof S as S[K] extends { optional: true } ? never : K]: ValueOf<S[K]> } & {
  readonly [K in keyof S as S[K] extends { optional: true } ? K : never]?: ValueOf<S[K]>;
};

/** The fully resolved configuration of one run. Every field has a value (defaults filled in). */
export type RunConfig = { readonly [K in keyof Fields]: Fields[K] extends ConfigField ? ValueOf<Fields[K]> : Section<Fields[K]> };
export type DataConfig = RunConfig['data'];
export type ModelConfig = RunConfig['model'];
export type SparseConfig = RunConfig['sparse'];
export type OptimiserConfig = RunConfig['optimiser'];
export type TrainConfig = RunConfig['train'];
export type AverageConfig = RunConfig['average'];
export type CalibrateConfig = RunConfig['calibrate'];
export type OutputConfig = RunConfig['output'];

/** Fields left out of the config hash: where a run is written does not change what it computes. */
const UNHASHED_SECTIONS = ['output'];

function isField(node: unknown): node is ConfigField {
  return typeof node === 'object' && node !== null && (node as ConfigField).schema instanceof z.ZodType;
}

/** Own keys only: a key named like an Object.prototype member (toString, constructor, __proto__) is no field. */
function own<T>(node: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(node, key) ? node[key] : undefined;
}

interface LeafEntry {
  readonly path: string;
  readonly section?: string;
  readonly field: string;
  readonly leaf: ConfigField;
}

const LEAVES: readonly LeafEntry[] = Object.entries(CONFIG_FIELDS as unknown as Record<string, ConfigField | Record<string, ConfigField>>).flatMap(([key, node]) =>
  isField(node) ? [{ path: key, field: key, leaf: node }] : Object.entries(node).map(([field, leaf]) => ({ path: `${key}.${field}`, section: key, field, leaf })),
);

/** Every config field as `section.field` (or `seed`) with its declaration. */
function leaves(): readonly LeafEntry[] {
  return LEAVES;
}

/**
 * The config as one zod object schema (strict: unknown keys are errors), what a config file may hold:
 * every field optional, defaults as declared. Used for the JSON Schema; resolveConfig validates field by
 * field with the same field schemas, to say where each value came from.
 */
export const ConfigFileSchema = z
  .object(
    Object.fromEntries(
      Object.entries(CONFIG_FIELDS as unknown as Record<string, ConfigField | Record<string, ConfigField>>).map(([key, node]) => [
        key,
        isField(node)
          ? fileField(node)
          : z
              .object(Object.fromEntries(Object.entries(node).map(([field, leaf]) => [field, fileField(leaf)])))
              .strict()
              .nullable()
              .optional(),
      ]),
    ),
  )
  .strict();

function fileField(leaf: ConfigField): z.ZodType {
  // null means "not given" in a config file, as an empty YAML value does. A default path is where this
  // installation keeps it, so the published schema names it instead of giving a machine's path.
  const machinePath = leaf.kind === 'path' && typeof leaf.default === 'string' && path.isAbsolute(leaf.default);
  const doc = leaf.derive ? `${leaf.doc}; derived from other fields when not given` : machinePath ? `${leaf.doc} (default: the demo data inside the package)` : leaf.doc;
  const nullable = leaf.schema.nullable();
  return (leaf.default !== undefined && !machinePath ? nullable.default(leaf.default as never) : nullable.optional()).describe(doc);
}

/**
 * The JSON Schema (draft 2020-12) of a config file (`--config FILE`, a preset's `config`, the `config` of
 * `POST /runs`), generated from the same declaration. Published as `config.schema.json` in the package.
 */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...(z.toJSONSchema(ConfigFileSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>),
    title: 'cigl run configuration',
    description: 'A cigl run configuration (YAML or JSON). Every field is optional; relative paths resolve against the file\'s folder.',
  };
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
    type: leaf.type,
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
  const deferred: LeafEntry[] = [];
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
  return HASHED_LEAVES.flatMap((l) => {
    const a = leafValue(before, l);
    const b = leafValue(after, l);
    return canonicalJson(a) === canonicalJson(b) ? [] : [{ path: l.path, before: a, after: b }];
  });
}

/** The config's hashed fields as `section.field` (or `seed`) → value, in declaration order; absent ones left out. */
export function configValues(config: RunConfig): Map<string, unknown> {
  return new Map(HASHED_LEAVES.flatMap((l) => {
    const value = leafValue(config, l);
    return value === undefined ? [] : [[l.path, value] as const];
  }));
}

const HASHED_LEAVES = LEAVES.filter((l) => !UNHASHED_SECTIONS.includes(l.section ?? ''));

function leafValue(config: RunConfig, l: LeafEntry): unknown {
  return l.section ? (config as unknown as Record<string, Record<string, unknown>>)[l.section]?.[l.field] : (config as unknown as Record<string, unknown>)[l.field];
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
  const sections = CONFIG_FIELDS as unknown as Readonly<Record<string, ConfigField | Readonly<Record<string, ConfigField>>>>;
  for (const [key, value] of Object.entries(input)) {
    const node = own(sections, key);
    if (node === undefined) {
      const hint = closest(key, Object.keys(sections));
      issues.push({ path: key, message: `unknown field${hint ? ` (did you mean ${hint}?)` : ''}`, origin });
    } else if (isField(node)) {
      raw.set(key, { value, origin, baseDir });
    } else if (!isPlainObject(value)) {
      if (value !== null) issues.push({ path: key, message: `must be a mapping of fields, got ${show(value)}`, origin });
    } else {
      for (const [field, fieldValue] of Object.entries(value)) {
        if (own(node, field) === undefined) {
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
function parseOverrideValue(text: string, leaf: ConfigField): unknown {
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

function check(leaf: ConfigField, value: unknown, at: string): Omit<ConfigIssue, 'origin'> | undefined {
  if (leaf.schema.safeParse(value).success) return undefined;
  const fail = (expected: string) => ({ path: at, message: `must be ${expected}, got ${show(value)}` });
  if (leaf.kind === 'enum') {
    const values = leaf.values ?? [];
    const hint = typeof value === 'string' ? closest(value, values) : undefined;
    return { path: at, message: `must be one of ${values.join(', ')}; got ${show(value)}${hint ? ` (did you mean ${hint}?)` : ''}` };
  }
  if (leaf.kind === 'intList' && Array.isArray(value)) {
    const minItems = leaf.minItems ?? 0;
    if (value.length < minItems) return fail(`a list of at least ${minItems} integer${minItems === 1 ? '' : 's'}`);
    const element = (leaf.schema as unknown as z.ZodArray<z.ZodType>).element;
    const bad = value.findIndex((v) => !element.safeParse(v).success);
    if (bad >= 0) return { path: `${at}[${bad}]`, message: `must be an integer >= ${leaf.min}, got ${show(value[bad])}` };
  }
  return fail(leaf.expected);
}

function normalise(leaf: ConfigField, value: unknown, baseDir: string): unknown {
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
