import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { ConfigError, configHash, describeConfigFields, resolveConfig, type RunConfig } from '../config/config';
import { dataPathMissing } from '../pipeline/run-data';
import { HttpError } from './http-error';
import { newRunId } from './run-id';
import type { RunRequest } from './run-queue';

/**
 * Turns the body of `POST /runs` into a RunRequest, validated as the CLI validates a config file:
 *
 * ```json
 * { "pipeline": "cigl", "config": { "sparse": { "density": 0.1 }, "output": { "runName": "my-run" } } }
 * ```
 *
 * The pipeline's defaults (e.g. `sparse.method: cigl`) are merged under the config, as the CLI does.
 * Problems become a 400 that names the field. The daemon decides where runs are written:
 * `output.runsDir` may not be given, and `output.runName` (optional) becomes the run id. `data.path`
 * (relative paths are taken from the first data root) must lie inside one of the daemon's data roots,
 * symlinks resolved, so that no request makes the daemon read an arbitrary file, and exist; no path may
 * hold a control character.
 */
export interface RunRequestContext {
  /** The daemon's pipelines by name, with the config each implies. */
  readonly pipelines: Readonly<Record<string, { readonly defaults?: Readonly<Record<string, unknown>> }>>;
  /** The daemon's runs folder. */
  readonly runsDir: string;
  /** Directories data sets may be read from; the first resolves relative `data.path` values. */
  readonly dataRoots: readonly string[];
  readonly now?: () => Date;
}

/**
 * The body of `POST /runs`: a pipeline's name and a config as a config file would hold it (checked
 * field by field by resolveConfig, see config.ts). Unknown keys, Object.prototype names included, are errors.
 */
export const RunRequestBodySchema = z
  .object({
    pipeline: z.string().describe('a pipeline of the daemon (cigl, rigl, dense)'),
    config: z.unknown().optional().describe('the run configuration, as in a config file (without output.runsDir)'),
  })
  .strict();
export type RunRequestBody = z.infer<typeof RunRequestBodySchema>;

export function parseRunRequest(body: unknown, context: RunRequestContext): RunRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HttpError(400, 'the request body must be a JSON object with "pipeline" and "config"');
  }
  const expected = Object.keys(RunRequestBodySchema.shape);
  const unknown = Object.keys(body).filter((k) => !Object.hasOwn(RunRequestBodySchema.shape, k));
  if (unknown.length > 0) {
    throw new HttpError(400, `unknown field ${unknown[0]} in the request body (expected ${expected.join(', ')})`, [{ field: unknown[0], message: 'unknown field' }]);
  }
  const parsed = RunRequestBodySchema.safeParse(body);
  const pipeline = parsed.success ? parsed.data.pipeline : (body as { pipeline?: unknown }).pipeline;
  const names = Object.keys(context.pipelines);
  if (!parsed.success || typeof pipeline !== 'string' || !Object.hasOwn(context.pipelines, pipeline)) {
    const message = `must be one of ${names.join(', ')}; got ${JSON.stringify(pipeline ?? null)}`;
    throw new HttpError(400, `invalid request: pipeline ${message}`, [{ field: 'pipeline', message }]);
  }
  const raw = parsed.data.config ?? {};
  const output = (raw as { output?: unknown }).output;
  if (typeof output === 'object' && output !== null && Object.hasOwn(output, 'runsDir')) {
    const message = 'is set by the daemon (runs are written under its runs folder); leave it out';
    throw new HttpError(400, `invalid config: output.runsDir ${message}`, [{ field: 'output.runsDir', message }]);
  }

  // As given: resolving a path may drop the part that held the character ("a\u0000/../b").
  checkPathCharacters(raw);
  let config: RunConfig;
  try {
    const base = mergeUnder(context.pipelines[pipeline].defaults ?? {}, raw);
    config = resolveConfig({ base, baseOrigin: 'request', cwd: context.dataRoots[0] });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new HttpError(400, err.message, err.issues.map((i) => ({ field: i.path, message: i.message })));
  }
  checkDataPath(config.data.path, context.dataRoots);
  const missing = dataPathMissing(config);
  if (missing) throw new HttpError(400, `invalid config: data.path ${missing}`, [{ field: 'data.path', message: missing }]);
  const id = config.output.runName ?? newRunId(config, context.now?.() ?? new Date());
  const placed: RunConfig = { ...config, output: { runsDir: context.runsDir, runName: id } };
  return { id, pipeline, config: placed, configHash: configHash(placed) };
}

/** `config` with the pipeline's defaults filled in, section by section (the config's values win). */
function mergeUnder(defaults: Readonly<Record<string, unknown>>, config: unknown): unknown {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return config; // resolveConfig explains
  const merged: Record<string, unknown> = { ...(config as Record<string, unknown>) };
  for (const [key, value] of Object.entries(defaults)) {
    const given = merged[key];
    const bothSections = isObject(value) && (given === undefined || isObject(given));
    merged[key] = bothSections ? { ...(value as object), ...((given as object | undefined) ?? {}) } : (given ?? value);
  }
  return merged;
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A file name with a control character (NUL above all, which ends a path where the operating system
 * reads it) is a mistake or an attack, never a data set: refused up front instead of failing the run.
 */
function checkPathCharacters(config: unknown): void {
  for (const field of describeConfigFields().filter((f) => f.type === 'path')) {
    const value = field.path.split('.').reduce<unknown>((node, key) => (isObject(node) ? (node as Record<string, unknown>)[key] : undefined), config);
    if (typeof value !== 'string' || !/[\u0000-\u001f\u007f]/.test(value)) continue;
    const message = `must not contain control characters (NUL, newline, ...); got ${JSON.stringify(value)}`;
    throw new HttpError(400, `invalid config: ${field.path} ${message}`, [{ field: field.path, message }]);
  }
}

function checkDataPath(dataPath: string, roots: readonly string[]): void {
  const message = dataPathProblem(dataPath, roots);
  if (message) throw new HttpError(400, `invalid config: data.path ${message}`, [{ field: 'data.path', message }]);
}

/**
 * Why a run may not read `dataPath` (symlinks resolved, it must lie inside one of `roots`), or
 * undefined when it may. Checked when a run is submitted over HTTP and again when a daemon claims a run
 * from a shared queue, where anyone who can reach Redis may have put it.
 */
export function dataPathProblem(dataPath: string, roots: readonly string[]): string | undefined {
  const real = realOrSelf(dataPath);
  if (roots.some((root) => isInside(real, realOrSelf(root)))) return undefined;
  return `must lie inside the daemon's data roots (${roots.join(', ')}); got ${JSON.stringify(dataPath)}`;
}

/** The path with symlinks resolved, or (for a path that does not exist yet) as given. */
function realOrSelf(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel.split(path.sep)[0] !== '..' && !path.isAbsolute(rel));
}
