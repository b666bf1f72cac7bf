import * as path from 'node:path';
import { ensureWritableDir } from '../../sinks/run-dir';
import { resolveConfig, type ConfigOverride, type RunConfig } from '../config';
import type { CliIo, CommandSpec, ParsedArgs } from '../command';
import { reportProgress } from '../progress';
import { formatSweepTable } from '../summary-table';
import type { CliWiring } from '../wiring';
import { parseList } from './values';

/** `cigl sweep`: methods × densities × seeds, one run directory each, and a comparison table. */
export function sweepCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'sweep',
    summary: 'train methods × densities × seeds and compare accuracy and ECE',
    usage: ['sweep [--config FILE] [--methods rigl,cigl] [--densities 0.2,0.1,0.05] [--seeds 0,1,2] [--section.field VALUE ...]'],
    description:
      'Every combination is a run with its own directory under <output.runsDir>/<output.runName or sweep-TIME>/,\n' +
      'configured as the base config with sparse.method, sparse.density and seed replaced.',
    acceptsConfig: true,
    options: {
      config: { type: 'string', short: 'c', value: 'FILE', description: 'base YAML or JSON config' },
      methods: { type: 'string', value: 'LIST', description: 'sparse methods (default rigl,cigl)' },
      densities: { type: 'string', value: 'LIST', description: 'densities in (0, 1] (default 0.2,0.1,0.05)' },
      seeds: { type: 'string', value: 'LIST', description: 'seeds (default 0)' },
      'dry-run': { type: 'boolean', description: 'list the runs without training' },
      markdown: { type: 'boolean', description: 'print the comparison as Markdown' },
    },
    epilog: 'Example:\n  cigl sweep --methods rigl,cigl --densities 0.1,0.05 --seeds 0,1 --train.epochs 5',
    async run(args, io) {
      const { dir, runs } = expandSweep(args, io, new Date());
      if (args.values['dry-run']) {
        io.stdout.write(runs.map((r) => `${path.join(dir, r.output.runName!)}  ${r.sparse.method} density ${r.sparse.density} seed ${r.seed}\n`).join(''));
        return 0;
      }
      ensureWritableDir(dir);
      const stop = wiring.gracefulStop();
      try {
        const outcome = await wiring.sweep({ dir, runs, stop: stop.signal, progress: (o) => reportProgress(io.stdout, o), io });
        io.stdout.write(formatSweepTable(outcome.summaries, args.values.markdown ? 'markdown' : 'text'));
        if (outcome.status === 'stopped') io.stderr.write(`sweep stopped after ${outcome.summaries.length} of ${runs.length} runs\n`);
        return 0;
      } finally {
        stop.dispose();
      }
    },
  };
}

/** The validated config of every run of a sweep, and the directory that holds them. */
export function expandSweep(args: ParsedArgs, io: CliIo, now: Date): { dir: string; runs: RunConfig[] } {
  const file = args.values.config as string | undefined;
  const sources = { file: file && path.resolve(io.cwd, file), overrides: args.overrides, cwd: io.cwd };
  const base = resolveConfig(sources);
  const name = base.output.runName ?? `sweep-${now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}`;
  const dir = path.join(base.output.runsDir, name);
  const methods = parseList((args.values.methods as string | undefined) ?? 'rigl,cigl', '--methods');
  const densities = parseList((args.values.densities as string | undefined) ?? '0.2,0.1,0.05', '--densities');
  const seeds = parseList((args.values.seeds as string | undefined) ?? '0', '--seeds');
  const runs: RunConfig[] = [];
  for (const method of methods) {
    for (const density of method === 'dense' ? ['1'] : densities) {
      for (const seed of seeds) {
        const extra: ConfigOverride[] = [
          { path: 'sparse.method', raw: method, origin: '--methods' },
          { path: 'sparse.density', raw: density, origin: '--densities' },
          { path: 'seed', raw: seed, origin: '--seeds' },
          { path: 'output.runsDir', raw: dir, origin: 'sweep' },
          { path: 'output.runName', raw: `${method}-d${density}-s${seed}`, origin: 'sweep' },
        ];
        runs.push(resolveConfig({ ...sources, overrides: [...sources.overrides, ...extra] }));
      }
    }
  }
  return { dir, runs };
}
