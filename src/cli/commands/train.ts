import * as path from 'node:path';
import { prepareRunDir, readSavedConfig, formatConfig } from '../../sinks/run-dir';
import { configHash, resolveConfig, type ConfigOverride, type RunConfig } from '../config';
import type { CliIo, CommandSpec, ParsedArgs } from '../command';
import { reportProgress } from '../progress';
import { formatSummary } from '../summary-table';
import type { CliWiring } from '../wiring';

/** `cigl train`: resolve the config, prepare the run directory, run the training job with graceful stop. */
export function trainCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'train',
    summary: 'train a (sparse) model and write its run directory',
    usage: ['train [--config FILE] [--section.field VALUE ...] [--set section.field=VALUE ...]', 'train --resume --output.runName NAME [--config FILE]'],
    description:
      'Trains as the config says (defaults: CigL on the built-in CIFAR-10 subset), streaming metrics to\n' +
      '<output.runsDir>/<output.runName>/. Ctrl-C once stops after the current step with a checkpoint\n' +
      '(resume with --resume); twice exits at once. An existing run directory is never overwritten.',
    acceptsConfig: true,
    options: {
      config: { type: 'string', short: 'c', value: 'FILE', description: 'YAML or JSON config file' },
      resume: { type: 'boolean', description: 'continue the run output.runName from its newest checkpoint (same config required)' },
      'print-config': { type: 'boolean', description: 'print the resolved config and its hash, then exit' },
      markdown: { type: 'boolean', description: 'print the final summary as Markdown' },
    },
    epilog: 'Examples:\n  cigl train\n  cigl train --config exp.yaml --train.epochs 3 --set sparse.density=0.05\n  cigl train --resume --output.runName my-run',
    async run(args, io) {
      const config = resolveTrainConfig(args, io);
      const hash = configHash(config);
      if (args.values['print-config']) {
        io.stdout.write(formatConfig(config) + `config hash ${hash}\n`);
        return 0;
      }
      const resume = args.values.resume === true;
      const runDir = prepareRunDir(config, { resume });
      io.stderr.write(`${resume ? 'resuming' : 'run directory'} ${runDir.dir}\n`);
      const stop = wiring.gracefulStop();
      try {
        const outcome = await wiring.train({
          config,
          configHash: hash,
          runDir,
          resume,
          stop: stop.signal,
          progress: (options) => reportProgress(io.stdout, { epochs: config.train.epochs, ...options }),
          io,
        });
        if (outcome.status === 'stopped') {
          io.stderr.write(
            `stopped after step ${outcome.step}; checkpoint saved. Continue with:\n` +
              `  cigl train --resume --output.runsDir ${config.output.runsDir} --output.runName ${runDir.name}\n`,
          );
        } else if (outcome.summary) {
          io.stdout.write(formatSummary(outcome.summary, args.values.markdown ? 'markdown' : 'text'));
        }
        return 0;
      } finally {
        stop.dispose();
      }
    },
  };
}

/**
 * The config of a train command: the --config file, or, for --resume without one, the config saved in
 * the run directory; then the flag overrides.
 */
export function resolveTrainConfig(args: ParsedArgs, io: CliIo): RunConfig {
  const file = args.values.config as string | undefined;
  const overrides: readonly ConfigOverride[] = args.overrides;
  if (file || !args.values.resume) {
    return resolveConfig({ file: file && path.resolve(io.cwd, file), overrides, cwd: io.cwd });
  }
  const located = resolveConfig({ overrides, cwd: io.cwd });
  if (!located.output.runName) return located; // prepareRunDir explains that --resume needs a name
  const dir = path.join(located.output.runsDir, located.output.runName);
  return resolveConfig({ base: readSavedConfig(dir), baseOrigin: `saved config of ${dir}`, overrides, cwd: io.cwd });
}
