import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, isConfigField, loadConfigFile, suggestField, type ConfigIssue, type ConfigOverride } from '../config/config';
import { repoRoot } from '../util/paths';

/**
 * A sweep preset (`cigl sweep --preset NAME`): a YAML or JSON file with a base `config` (the same
 * sections as a `--config` file) and a `sweep` list of groups. Each group is a product methods ×
 * densities × seeds, optionally with a `label` (its runs are named `<label>-d<density>-s<seed>` and get
 * their own rows in the comparison; a labelled group has one method) and `set`, config fields
 * (`section.field: value`) that differ for the group, e.g. an ablation's `sparse.randomMaskRate: 0`.
 *
 * NAME is a file in the repository's `presets/` folder (with or without .yaml/.yml/.json) or a path.
 * Relative paths in the preset's config resolve against the preset file's folder, as in a config file.
 */
export const PRESETS_DIR = path.join(repoRoot, 'presets');

export interface SweepGroup {
  readonly label?: string;
  readonly methods: readonly string[];
  readonly densities: readonly string[];
  readonly seeds: readonly string[];
  /** Config overrides of this group, as command-line overrides (origin names the preset). */
  readonly set: readonly ConfigOverride[];
}

export interface SweepPreset {
  readonly file: string;
  /** The base configuration (unvalidated: resolveConfig checks it, naming the preset). */
  readonly config: unknown;
  readonly groups: readonly SweepGroup[];
}

const LABEL = /^[A-Za-z][A-Za-z0-9._]*(?:-[A-Za-z0-9._]+)*$/;

/** The preset file NAME refers to: presets/NAME(.yaml|.yml|.json), else NAME as a path from cwd. */
export function presetFile(name: string, cwd: string): string {
  const candidates = /^[A-Za-z0-9][\w.-]*$/.test(name) ? ['', '.yaml', '.yml', '.json'].map((ext) => path.join(PRESETS_DIR, name + ext)) : [];
  candidates.push(path.resolve(cwd, name));
  const found = candidates.find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
  if (!found) throw new ConfigError([{ path: '(preset)', message: `no preset ${JSON.stringify(name)}: not in ${PRESETS_DIR} (${listPresets().join(', ') || 'none there'}) and no such file` }]);
  return found;
}

/** Names of the presets in presets/. */
export function listPresets(): string[] {
  if (!fs.existsSync(PRESETS_DIR)) return [];
  return fs
    .readdirSync(PRESETS_DIR)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .map((f) => f.replace(/\.(ya?ml|json)$/, ''))
    .sort();
}

/** Reads and checks a preset; every problem is reported with its place in the file. */
export function loadPreset(name: string, cwd: string): SweepPreset {
  const file = presetFile(name, cwd);
  const origin = `preset ${file}`;
  const input = loadConfigFile(file) as Record<string, unknown>;
  const issues: ConfigIssue[] = [];
  const issue = (p: string, message: string) => issues.push({ path: p, message, origin });
  if (!isObject(input)) {
    throw new ConfigError([{ path: '(top level)', message: 'must be a mapping with config and sweep', origin }]);
  }
  for (const key of Object.keys(input)) if (!['description', 'config', 'sweep'].includes(key)) issue(key, 'unknown preset field (expected description, config, sweep)');
  if (input.config !== undefined && !isObject(input.config)) issue('config', 'must be a mapping of config sections');
  const groups: SweepGroup[] = [];
  if (!Array.isArray(input.sweep) || input.sweep.length === 0) issue('sweep', 'must be a non-empty list of groups (methods, densities, seeds)');
  else {
    input.sweep.forEach((raw: unknown, g: number) => {
      const at = `sweep[${g}]`;
      if (!isObject(raw)) return issue(at, 'must be a mapping with methods, densities and seeds');
      for (const key of Object.keys(raw)) if (!['label', 'methods', 'densities', 'seeds', 'set'].includes(key)) issue(`${at}.${key}`, 'unknown group field (expected label, methods, densities, seeds, set)');
      const list = (key: 'methods' | 'densities' | 'seeds', kind: 'string' | 'number'): string[] => {
        const v = raw[key];
        if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== kind)) {
          issue(`${at}.${key}`, `must be a non-empty list of ${kind}s, got ${JSON.stringify(v)}`);
          return [];
        }
        return v.map(String);
      };
      const methods = list('methods', 'string');
      const densities = list('densities', 'number');
      const seeds = list('seeds', 'number');
      const label = raw.label;
      if (label !== undefined && (typeof label !== 'string' || !LABEL.test(label))) issue(`${at}.label`, `must be a name of letters, digits, ".", "_" and "-", got ${JSON.stringify(label)}`);
      if (label !== undefined && methods.length !== 1) issue(`${at}.label`, `a labelled group has exactly one method, got ${methods.length}`);
      const set: ConfigOverride[] = [];
      if (raw.set !== undefined && !isObject(raw.set)) issue(`${at}.set`, 'must be a mapping of section.field: value');
      for (const [field, value] of Object.entries(isObject(raw.set) ? raw.set : {})) {
        if (!isConfigField(field)) {
          const hint = suggestField(field);
          issue(`${at}.set.${field}`, `unknown config field${hint ? ` (did you mean ${hint}?)` : ''}`);
        } else {
          set.push({ path: field, raw: typeof value === 'string' ? value : JSON.stringify(value), origin: `${origin} ${at}.set` });
        }
      }
      groups.push({ ...(typeof label === 'string' ? { label } : {}), methods, densities, seeds, set });
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { file, config: input.config ?? {}, groups };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
