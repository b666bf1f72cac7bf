import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunDirError } from '../sinks/run-dir';
import { repoRoot } from '../util/paths';
import { formatCommandHelp, formatTopHelp, parseCommandArgs, type CliIo, type CommandSpec } from './command';
import { ConfigError, describeConfigFields } from '../config/config';
import { EXIT_FAILED, EXIT_FINISHED, EXIT_USAGE } from './exit-codes';
import { daemonCommand } from './commands/daemon';
import { dataCommand } from './commands/data';
import { evalCommand } from './commands/eval';
import { predictCommand } from './commands/predict';
import { sweepCommand } from './commands/sweep';
import { trainCommand } from './commands/train';
import { UsageError } from './usage-error';
import { defaultWiring, type CliWiring } from './wiring';

/**
 * The `cigl` entry point: picks the subcommand, handles --help/--version, and turns errors into
 * messages and exit statuses (exit-codes.ts): 0 done, 1 failed while running, 2 unusable command line
 * or config (bad flag, invalid config value, run directory that exists or cannot be written); commands
 * that train return 130 / 143 themselves after a graceful stop.
 */
export function buildCommands(wiring: CliWiring): CommandSpec[] {
  return [trainCommand(wiring), evalCommand(wiring), predictCommand(wiring), dataCommand(wiring), sweepCommand(wiring), daemonCommand(wiring)];
}

export async function runCommandLine(argv: readonly string[], commands: readonly CommandSpec[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr.write(formatTopHelp(commands, version()));
    return EXIT_USAGE;
  }
  if (first === '--help' || first === '-h') {
    io.stdout.write(formatTopHelp(commands, version()));
    return EXIT_FINISHED;
  }
  if (first === '--version' || first === '-v') {
    io.stdout.write(`${version()}\n`);
    return EXIT_FINISHED;
  }
  if (first === 'help') {
    const target = rest[0] === undefined ? undefined : commands.find((c) => c.name === rest[0]);
    if (rest[0] !== undefined && !target) return unknownCommand(rest[0], commands, io);
    io.stdout.write(target ? commandHelp(target) : formatTopHelp(commands, version()));
    return EXIT_FINISHED;
  }
  const command = commands.find((c) => c.name === first);
  if (!command) return unknownCommand(first, commands, io);
  const beforeDashes = rest.indexOf('--') < 0 ? rest : rest.slice(0, rest.indexOf('--'));
  if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) {
    io.stdout.write(commandHelp(command));
    return EXIT_FINISHED;
  }
  try {
    return await command.run(parseCommandArgs(command, rest), io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`cigl ${command.name}: ${err.message}\nRun 'cigl ${command.name} --help' for usage.\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError || err instanceof RunDirError) {
      io.stderr.write(`cigl ${command.name}: ${err.message}\n`);
      return EXIT_USAGE;
    }
    const e = err as Error;
    io.stderr.write(`cigl ${command.name}: error: ${process.env.CIGL_DEBUG ? (e.stack ?? e.message) : e.message}\n`);
    return EXIT_FAILED;
  }
}

/** `cigl` with the real process streams and the default wiring. */
export function main(argv: readonly string[] = process.argv.slice(2), wiring: CliWiring = defaultWiring): Promise<number> {
  return runCommandLine(argv, buildCommands(wiring), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() });
}

/** For bin/cigl.js: run and set the exit status (letting open handles finish, e.g. flushing logs). */
export function runCli(): void {
  // A reader that closes early (`cigl predict ... | head`) is not an error: drop the rest of the output
  // and carry on (a training run must not die for it).
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.stdout.write = () => true;
  });
  main().then(
    (code) => (process.exitCode = code),
    (err: Error) => {
      process.stderr.write(`cigl: ${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    },
  );
}

function commandHelp(command: CommandSpec): string {
  return formatCommandHelp(command, command.acceptsConfig ? describeConfigFields() : undefined);
}

function unknownCommand(name: string, commands: readonly CommandSpec[], io: CliIo): number {
  const hint = commands.find((c) => c.name[0] === name[0] && Math.abs(c.name.length - name.length) <= 2);
  io.stderr.write(`cigl: unknown command ${JSON.stringify(name)}${hint ? ` (did you mean ${hint.name}?)` : ''}\nRun 'cigl --help' for the commands.\n`);
  return EXIT_USAGE;
}

function version(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
