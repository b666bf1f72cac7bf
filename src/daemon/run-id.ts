import { randomBytes } from 'node:crypto';
import { RUN_NAME_HINT, RUN_NAME_PATTERN, type RunConfig } from '../config/config';
import { generateRunName } from '../sinks/run-dir';

/**
 * A daemon run's id is its URL segment and the name of its directory under the daemon's runs folder,
 * so it is exactly a valid `output.runName`: one path segment of letters, digits, '.', '_' and '-' that
 * starts with a letter or digit (never `.`, `..`, a separator or a percent sign). Anything else is
 * rejected before it reaches a path.
 */
export const RUN_ID_PATTERN = RUN_NAME_PATTERN;
export const RUN_ID_HINT = RUN_NAME_HINT;

export function isRunId(value: unknown): value is string {
  return typeof value === 'string' && RUN_ID_PATTERN.test(value);
}

/**
 * A fresh id: the CLI's generated run name (method, model, density, seed, UTC time) plus 6 random hex
 * digits, so that daemons sharing a runs folder never collide. The randomness (crypto) names the run
 * only; it never reaches training.
 */
export function newRunId(config: RunConfig, now: Date = new Date()): string {
  const id = `${generateRunName(config, now)}-${randomBytes(3).toString('hex')}`;
  if (!isRunId(id)) throw new Error(`generated run id ${JSON.stringify(id)} does not match the run id pattern`);
  return id;
}
