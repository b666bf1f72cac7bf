import { isBooleanField, isConfigField, suggestField, type ConfigOverride } from '../config/config';
import { UsageError } from './usage-error';

/**
 * Takes the config overrides out of a command line: `--section.field VALUE`, `--section.field=VALUE`,
 * `--seed 3`, `--set section.field=VALUE`, and a bare `--section.flag` for a true/false field. Everything
 * else is returned in order for parseArgs. A dotted flag that names no field is an error with a hint.
 */
export function splitConfigFlags(argv: readonly string[]): { overrides: ConfigOverride[]; rest: string[] } {
  const overrides: ConfigOverride[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (token === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    if (token === '--set' || token.startsWith('--set=')) {
      const assignment = token === '--set' ? argv[++i] : token.slice('--set='.length);
      if (assignment === undefined) throw new UsageError('--set needs section.field=VALUE');
      const eq = assignment.indexOf('=');
      if (eq <= 0) throw new UsageError(`--set needs section.field=VALUE, got ${JSON.stringify(assignment)}`);
      overrides.push(checked(assignment.slice(0, eq), assignment.slice(eq + 1), `--set ${assignment}`));
      continue;
    }
    const m = /^--([A-Za-z][\w-]*(?:\.[A-Za-z][\w-]*)*)(?:=(.*))?$/s.exec(token);
    if (!m || (!m[1].includes('.') && !isConfigField(m[1]))) {
      rest.push(token);
      continue;
    }
    const field = m[1];
    let raw = m[2];
    if (raw === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        if (!isBooleanField(field)) throw new UsageError(`--${field} needs a value`);
        raw = 'true';
      } else {
        raw = next;
        i++;
      }
    }
    overrides.push(checked(field, raw, `--${field}`));
  }
  return { overrides, rest };
}

function checked(field: string, raw: string, origin: string): ConfigOverride {
  if (!isConfigField(field)) {
    const hint = suggestField(field);
    throw new UsageError(`unknown config field ${field} in ${origin}${hint ? ` (did you mean ${hint}?)` : ''}`);
  }
  return { path: field, raw, origin };
}
