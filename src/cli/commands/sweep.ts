import * as path from 'node:path';
import { redactedUrl } from '../../daemon/redis-connection';
import { DEFAULT_ATTEMPTS, DEFAULT_QUEUE_NAME, RedisRunQueue } from '../../daemon/redis-run-queue';
import { ensureWritableDir } from '../../sinks/run-dir';
import { enqueueSweep, waitForSweep, writeQueuedSweepOutputs, type QueuedSweep } from '../../sweep/queued-sweep';
import { sweepRunName } from '../../sweep/comparison';
import { listPresets, loadPreset, type SweepGroup } from '../../sweep/preset';
import { resolveConfig, type ConfigOverride, type ConfigSources, type RunConfig } from '../../config/config';
import { UsageError, type CliIo, type CommandSpec, type ParsedArgs } from '../command';
import { reportProgress } from '../../report/progress';
import { formatSweepTable } from '../../report/summary-table';
import { EXIT_FAILED, EXIT_FINISHED, exitCodeOfStop } from '../exit-codes';
import type { CliWiring } from '../wiring';
import { parseList, parsePositiveInt, parseQueueUrl } from './values';

/** `cigl sweep`: methods × densities × seeds, one run directory each, and a comparison table. */
export function sweepCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'sweep',
    summary: 'train methods × densities × seeds and compare accuracy and ECE',
    usage: [
      'sweep [--config FILE] [--methods rigl,cigl] [--densities 0.2,0.1,0.05] [--seeds 0,1,2] [--section.field VALUE ...]',
      'sweep --preset NAME [--methods LABELS] [--densities LIST] [--seeds LIST] [--section.field VALUE ...]',
    ],
    description:
      'Every combination is a run with its own directory under <output.runsDir>/<output.runName or sweep-TIME>/,\n' +
      'configured as the base config with sparse.method, sparse.density and seed replaced. Running the same\n' +
      'command again continues the sweep: finished runs are kept, a stopped run is resumed. Runs go seed\n' +
      'by seed, so a sweep stopped early still has every method and density at its first seeds.\n' +
      'A preset (a file in presets/, or a path) is a base config plus groups of sweep axes; with a preset,\n' +
      '--methods keeps only the runs of the listed methods or group labels, --densities and --seeds replace\n' +
      `the preset's lists. Presets: ${listPresets().join(', ') || '(none)'}.`,
    acceptsConfig: true,
    options: {
      config: { type: 'string', short: 'c', value: 'FILE', description: 'base YAML or JSON config' },
      preset: { type: 'string', short: 'p', value: 'NAME', description: 'sweep preset from presets/ (or a file); not with --config' },
      methods: { type: 'string', value: 'LIST', description: 'sparse methods (default rigl,cigl)' },
      densities: { type: 'string', value: 'LIST', description: 'densities in (0, 1] (default 0.2,0.1,0.05)' },
      seeds: { type: 'string', value: 'LIST', description: 'seeds (default 0)' },
      'dry-run': { type: 'boolean', description: 'list the runs without training' },
      queue: { type: 'string', value: 'URL', description: 'redis://HOST:PORT: queue the runs for daemons started with the same --queue, and exit' },
      wait: { type: 'boolean', description: 'with --queue: wait until every run has ended, then write and print the comparison' },
      attempts: { type: 'string', value: 'N', description: `with --queue: attempts of a failing run before it is marked failed (default ${DEFAULT_ATTEMPTS})` },
      'queue-name': { type: 'string', value: 'NAME', description: `with --queue: the queue's name (default ${DEFAULT_QUEUE_NAME})` },
      markdown: { type: 'boolean', description: 'print the comparison as Markdown' },
    },
    epilog:
      'Examples:\n  cigl sweep --methods rigl,cigl --densities 0.1,0.05 --seeds 0,1 --train.epochs 5\n' +
      '  cigl sweep --preset repro-overfit --dry-run\n' +
      '  cigl sweep --preset repro-overfit --queue redis://queue-host:6379 --wait   (daemons: cigl daemon --queue ...)',
    async run(args, io) {
      const { dir, runs, command } = expandSweep(args, io, new Date());
      if (args.values['dry-run']) {
        io.stdout.write(runs.map((r) => `${path.join(dir, r.output.runName!)}  ${r.sparse.method} density ${r.sparse.density} seed ${r.seed}\n`).join(''));
        return 0;
      }
      if (args.values.wait && args.values.queue === undefined) throw new UsageError('--wait needs --queue (a local sweep always waits)');
      ensureWritableDir(dir);
      if (args.values.queue !== undefined) return runQueuedSweep(args, io, wiring, { dir, runs, command });
      const stop = wiring.gracefulStop();
      try {
        const outcome = await wiring.sweep({ dir, runs, stop: stop.signal, progress: (o) => reportProgress(io.stdout, o), io, command });
        io.stdout.write(formatSweepTable(outcome.summaries, args.values.markdown ? 'markdown' : 'text'));
        const failures = outcome.failures ?? [];
        for (const f of failures) io.stderr.write(`run ${f.runName} failed: ${f.error}\n`);
        if (outcome.status === 'stopped') io.stderr.write(`sweep stopped after ${outcome.summaries.length} of ${runs.length} runs; run the same command to continue:\n  ${command}\n`);
        // A failed run outweighs the stop: both are continued by the same command, but a failure needs a look first.
        if (failures.length > 0) return EXIT_FAILED;
        return outcome.status === 'stopped' ? exitCodeOfStop(stop.signal.reason) : EXIT_FINISHED;
      } finally {
        stop.dispose();
      }
    },
  };
}

/** `cigl sweep --queue URL [--wait]`: queue the grid for the daemons of a shared queue; wait for it if asked. */
async function runQueuedSweep(args: ParsedArgs, io: CliIo, wiring: CliWiring, sweep: QueuedSweep): Promise<number> {
  const url = parseQueueUrl(args.values.queue as string, '--queue');
  const attempts = parsePositiveInt(args.values.attempts as string | undefined, '--attempts') ?? DEFAULT_ATTEMPTS;
  const queue = await RedisRunQueue.open({ url, attempts, name: (args.values['queue-name'] as string | undefined) ?? DEFAULT_QUEUE_NAME });
  try {
    const ids = await enqueueSweep(queue, sweep, io);
    const waitCommand = `${sweep.command ?? 'cigl sweep ...'} --queue ${redactedUrl(url)} --wait`;
    if (!args.values.wait) {
      io.stdout.write(`queued ${ids.length} runs of ${path.basename(sweep.dir)} on ${queue.url}; wait for them and write the comparison with:\n  ${waitCommand}\n`);
      return 0;
    }
    const stop = wiring.gracefulStop();
    try {
      const waited = await waitForSweep(queue, ids, io, stop.signal);
      const { summaries, failures } = await writeQueuedSweepOutputs(sweep, waited, (id) => queue.summaryOf(id));
      io.stdout.write(formatSweepTable(summaries, args.values.markdown ? 'markdown' : 'text'));
      for (const f of failures) io.stderr.write(`run ${f.runName} failed: ${f.error}\n`);
      if (waited.status === 'stopped') io.stderr.write(`stopped waiting; the runs go on in the queue. Wait again with:\n  ${waitCommand}\n`);
      if (failures.length > 0) return EXIT_FAILED;
      return waited.status === 'stopped' ? exitCodeOfStop(stop.signal.reason) : EXIT_FINISHED;
    } finally {
      stop.dispose();
    }
  } finally {
    await queue.close();
  }
}

/**
 * The validated config of every run of a sweep, the directory that holds them, and a command line that
 * re-creates (and so continues) the sweep.
 */
export function expandSweep(args: ParsedArgs, io: CliIo, now: Date): { dir: string; runs: RunConfig[]; command: string } {
  const file = args.values.config as string | undefined;
  const presetName = args.values.preset as string | undefined;
  if (file !== undefined && presetName !== undefined) throw new UsageError('--config and --preset cannot be combined (a preset is a config file plus sweep axes)');
  const preset = presetName === undefined ? undefined : loadPreset(presetName, io.cwd);
  const sources: ConfigSources = preset
    ? { base: preset.config, baseOrigin: `preset ${preset.file}`, baseDir: path.dirname(preset.file), overrides: args.overrides, cwd: io.cwd }
    : { file: file && path.resolve(io.cwd, file), overrides: args.overrides, cwd: io.cwd };
  const base = resolveConfig(sources);
  const name = base.output.runName ?? `sweep-${now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;
  const dir = path.join(base.output.runsDir, name);
  const flag = (option: 'methods' | 'densities' | 'seeds') => {
    const text = args.values[option] as string | undefined;
    return text === undefined ? undefined : parseList(text, `--${option}`);
  };
  const groups = preset
    ? applyFlags(preset.groups, flag('methods'), flag('densities'), flag('seeds'))
    : [{ methods: flag('methods') ?? ['rigl', 'cigl'], densities: flag('densities') ?? ['0.2', '0.1', '0.05'], seeds: flag('seeds') ?? ['0'], set: [] }];
  const runs: RunConfig[] = [];
  // Seed by seed: a sweep stopped early (or still running) has every method and density at its first
  // seeds, a comparison that only gains precision as later seeds finish, not whole methods missing.
  for (const group of groups) {
    for (const seed of group.seeds) {
      for (const method of group.methods) {
        for (const density of method === 'dense' ? ['1'] : group.densities) {
          const runName = sweepRunName(group.label ?? method, density, seed);
          if (runs.some((r) => r.output.runName === runName)) throw new UsageError(`the sweep has two runs named ${runName}; give the groups different labels`);
          const extra: ConfigOverride[] = [
            ...group.set,
            { path: 'sparse.method', raw: method, origin: '--methods' },
            { path: 'sparse.density', raw: density, origin: '--densities' },
            { path: 'seed', raw: seed, origin: '--seeds' },
            { path: 'output.runsDir', raw: dir, origin: 'sweep' },
            { path: 'output.runName', raw: runName, origin: 'sweep' },
          ];
          runs.push(resolveConfig({ ...sources, overrides: [...sources.overrides!, ...extra] }));
        }
      }
    }
  }
  return { dir, runs, command: commandLine(args, base.output.runName === undefined ? name : undefined) };
}

/** A preset's groups with the command line's choices: --methods filters by method or label, the others replace. */
function applyFlags(groups: readonly SweepGroup[], methods?: string[], densities?: string[], seeds?: string[]): SweepGroup[] {
  const chosen = groups.flatMap((g) => {
    const kept = methods === undefined ? g.methods : g.label !== undefined ? (methods.includes(g.label) ? g.methods : []) : g.methods.filter((m) => methods.includes(m));
    return kept.length === 0 ? [] : [{ ...g, methods: kept, densities: densities ?? g.densities, seeds: seeds ?? g.seeds }];
  });
  const known = new Set(groups.flatMap((g) => (g.label !== undefined ? [g.label] : g.methods)));
  const unknown = (methods ?? []).filter((m) => !known.has(m));
  if (unknown.length > 0) throw new UsageError(`--methods: the preset has no ${unknown.join(', ')} (it has ${[...known].join(', ')})`);
  return chosen;
}

/** The command line of this sweep, with the generated sweep name added so that it continues this sweep. */
function commandLine(args: ParsedArgs, generatedName: string | undefined): string {
  const parts = ['cigl', 'sweep'];
  for (const option of ['preset', 'config', 'methods', 'densities', 'seeds']) {
    const value = args.values[option];
    if (typeof value === 'string') parts.push(`--${option}`, value);
  }
  for (const o of args.overrides) parts.push(`--${o.path}`, o.raw);
  if (generatedName !== undefined) parts.push('--output.runName', generatedName);
  return parts.map(shellQuote).join(' ');
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
