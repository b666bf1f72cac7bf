import * as fs from 'node:fs';
import * as path from 'node:path';
import { BACKEND_PREFERENCES, type BackendPreference } from '../../compute/backend';
import { redisOptionsFromUrl } from '../../daemon/redis-connection';
import { UsageError } from '../usage-error';

/** Comma-separated integers >= min, e.g. "15,10"; undefined when the option is absent. */
export function parseIntList(text: string | undefined, option: string, min: number): number[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(',').map((s) => s.trim());
  const values = items.map(Number);
  const bad = values.findIndex((v) => !Number.isInteger(v) || v < min);
  if (items.length === 0 || bad >= 0) {
    throw new UsageError(`${option} must be a comma-separated list of integers >= ${min}; got ${JSON.stringify(text)}`);
  }
  return values;
}

export function parsePositiveInt(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${option} must be a positive integer; got ${JSON.stringify(text)}`);
  return value;
}

/** Comma-separated, non-empty items. */
export function parseList(text: string, option: string): string[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new UsageError(`${option} must be a comma-separated list; got ${JSON.stringify(text)}`);
  return items;
}

/** A redis:// URL of a shared queue, checked for form (reachability is checked on connecting). */
export function parseQueueUrl(text: string, option: string): string {
  try {
    redisOptionsFromUrl(text);
  } catch (err) {
    throw new UsageError(`${option}: ${(err as Error).message}`);
  }
  return text;
}

/** --backend: one of the compute paths (default auto). */
export function parseBackend(value: unknown): BackendPreference {
  if (value === undefined) return 'auto';
  if (!(BACKEND_PREFERENCES as readonly unknown[]).includes(value)) {
    throw new UsageError(`--backend must be one of ${BACKEND_PREFERENCES.join(', ')}; got ${JSON.stringify(value)}`);
  }
  return value as BackendPreference;
}

/** One of `allowed`; `fallback` when the option is absent. */
export function parseChoice<T extends string>(value: unknown, option: string, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly unknown[]).includes(value)) throw new UsageError(`${option} must be one of ${allowed.join(', ')}; got ${JSON.stringify(value)}`);
  return value as T;
}

/** --model DIR of eval and predict: a directory holding a saved model.json, resolved against `cwd`. */
export function parseModelDir(value: unknown, cwd: string): string {
  if (typeof value !== 'string' || value === '') throw new UsageError('--model DIR is required');
  const modelDir = path.resolve(cwd, value);
  if (!fs.existsSync(path.join(modelDir, 'model.json'))) throw new UsageError(`--model ${value}: no model.json in ${modelDir}`);
  return modelDir;
}

/** Data formats and splits a saved model can be run on (eval, predict --data). */
export { DATA_FORMATS, SPLITS } from '../../data/types';
