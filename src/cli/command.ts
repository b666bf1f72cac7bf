import { parseArgs } from 'node:util';
import type { ConfigOverride } from '../config/config';
import { splitConfigFlags } from './config-flags';
import type { RunIo, TextOutput } from '../job/io';
import { UsageError } from './usage-error';

export { UsageError };

/**
 * What a `cigl` subcommand is: its options (for node:util parseArgs and for --help) and a handler. The
 * command table in main.ts maps names to these; handlers get their collaborators (training pipeline,
 * data fetcher, ...) from the CliWiring they were built with.
 */
export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder shown in help, e.g. FILE. */
  readonly value?: string;
  readonly description: string;
}

/** The CLI's io is a job's io (see job/io.ts). */
export type CliOutput = TextOutput;
export type CliIo = RunIo;

export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
  readonly positionals: readonly string[];
  /** `--section.field VALUE` and `--set section.field=VALUE` (only for commands that accept config). */
  readonly overrides: readonly ConfigOverride[];
}

export interface CommandSpec {
  readonly name: string;
  /** One line for the command list. */
  readonly summary: string;
  /** Usage line(s) after `cigl `, e.g. `train [--config FILE] [--resume] [--section.field VALUE ...]`. */
  readonly usage: readonly string[];
  /** Paragraphs printed under the usage. */
  readonly description?: string;
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Accepts config field overrides (and lists the fields in --help). */
  readonly acceptsConfig?: boolean;
  /** Names for positional arguments in help, e.g. ['fetch', 'DATASET']; none means none accepted. */
  readonly positionals?: readonly string[];
  /** Extra help text after the options (examples). */
  readonly epilog?: string;
  /** Returns the exit code. Throw UsageError for bad arguments (exit 2, with a pointer to --help). */
  run(args: ParsedArgs, io: CliIo): Promise<number>;
}

/** Parses argv for one command (after the command name); `--help` is handled by the caller. */
export function parseCommandArgs(spec: CommandSpec, argv: readonly string[]): ParsedArgs {
  const { overrides, rest } = spec.acceptsConfig ? splitConfigFlags(argv) : { overrides: [], rest: [...argv] };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options: Object.fromEntries(
        // parseArgs rejects keys present with an undefined value.
        Object.entries(spec.options).map(([name, o]) => [
          name,
          { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: (spec.positionals?.length ?? 0) > 0,
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split('. ')[0].replace(/\.$/, ''));
  }
  return { values: parsed.values as ParsedArgs['values'], positionals: parsed.positionals, overrides };
}

export function formatCommandHelp(spec: CommandSpec, configFields?: readonly { path: string; type: string; default: string; doc: string }[]): string {
  const lines = [`Usage: ${spec.usage.map((u) => `cigl ${u}`).join('\n       ')}`, '', spec.summary];
  if (spec.description) lines.push('', spec.description);
  const options = Object.entries(spec.options).map(([name, o]) => [
    `${o.short ? `-${o.short}, ` : '    '}--${name}${o.value ? ` ${o.value}` : ''}`,
    o.description,
  ]);
  options.push(['-h, --help', 'show this help']);
  lines.push('', 'Options:', ...columns(options, 2));
  if (spec.acceptsConfig && configFields) {
    lines.push(
      '',
      'Config fields (in the --config file, or as --section.field VALUE, or --set section.field=VALUE):',
      ...columns(configFields.map((f) => [f.path, `${f.doc} [${f.type}; default ${f.default}]`]), 2),
    );
  }
  if (spec.epilog) lines.push('', spec.epilog);
  return lines.join('\n') + '\n';
}

export function formatTopHelp(commands: readonly CommandSpec[], version: string): string {
  return [
    `cigl ${version}: calibrated sparse training (CigL) as an RxJS pipeline`,
    '',
    'Usage: cigl <command> [options]',
    '       cigl <command> --help',
    '',
    'Commands:',
    ...columns(commands.map((c) => [c.name, c.summary]), 2),
    '',
    'Options:',
    ...columns([['-h, --help', 'show this help'], ['-v, --version', 'print the version']], 2),
    '',
  ].join('\n');
}

/** Two aligned columns. */
function columns(rows: readonly (readonly string[])[], indent: number): string[] {
  const width = Math.max(0, ...rows.map((r) => r[0].length));
  return rows.map(([a, b]) => `${' '.repeat(indent)}${a.padEnd(width)}  ${b}`);
}
