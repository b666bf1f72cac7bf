import * as path from 'node:path';
import { createTrainJob } from '../../job/train-run';
import { listCheckpoints } from '../../sinks/checkpoint';
import { formatConfig, readSavedConfig, removeUnstartedRunDir, type RunDir } from '../../sinks/run-dir';
import { TrainingDiverged } from '../../train/divergence';
import { configHash, resolveConfig, type ConfigOverride, type RunConfig } from '../../config/config';
import type { CliIo, CommandSpec, ParsedArgs } from '../command';
import { formatSummary } from '../../report/summary-table';
import { EXIT_FAILED, EXIT_FINISHED, exitCodeOfStop } from '../exit-codes';
import type { CliWiring, TrainJob, TrainOutcome } from '../wiring';

/** `cigl train`: resolve the config, prepare the run directory, run the training job with graceful stop. */
export function trainCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'train',
    summary: 'train a (sparse) model and write its run directory',
    usage: ['train [--config FILE] [--section.field VALUE ...] [--set section.field=VALUE ...]', 'train --resume --output.runName NAME [--config FILE]'],
    description:
      'Trains as the config says (defaults: CigL on the built-in CIFAR-10 subset), streaming metrics to\n' +
      '<output.runsDir>/<output.runName>/. Ctrl-C once stops after the current step with a checkpoint\n' +
      '(resume with --resume); twice exits at once. An existing run directory is never overwritten.\n' +
      'Exit status: 0 finished, 1 failed (or diverged), 2 usage or config error, 130 stopped by Ctrl-C\n' +
      '(SIGINT) and 143 by SIGTERM, each after writing a checkpoint.',
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
        return EXIT_FINISHED;
      }
      const resume = args.values.resume === true;
      const stop = wiring.gracefulStop();
      let outcome: TrainOutcome;
      let job: TrainJob;
      try {
        job = createTrainJob(config, { resume, stop: stop.signal, io });
      } catch (err) {
        stop.dispose();
        throw err;
      }
      const runDir = job.runDir;
      io.stderr.write(`${resume ? 'resuming' : 'run directory'} ${runDir.dir}\n`);
      try {
        outcome = await wiring.train(job);
      } catch (err) {
        io.stderr.write(describeFailure(err as Error, runDir, resume));
        return EXIT_FAILED;
      } finally {
        stop.dispose();
      }
      if (outcome.status === 'stopped') {
        io.stderr.write(`stopped after step ${outcome.step}; checkpoint saved. Continue with:\n  ${resumeCommand(runDir)}\n`);
        return exitCodeOfStop(stop.signal.reason);
      }
      if (outcome.summary) io.stdout.write(formatSummary(outcome.summary, args.values.markdown ? 'markdown' : 'text'));
      return EXIT_FINISHED;
    },
  };
}

/**
 * What failed, and what to do next: a run that failed before training anything leaves no directory
 * (the same command works once the cause is fixed); one that trained keeps its directory and newest
 * checkpoint, to be resumed, or, after a divergence, replaced by a run with a changed config.
 */
function describeFailure(err: Error, runDir: RunDir, resume: boolean): string {
  const diverged = err instanceof TrainingDiverged;
  const lines = [`cigl train: ${diverged ? 'diverged' : 'error'}: ${process.env.CIGL_DEBUG ? (err.stack ?? err.message) : err.message}`];
  if (!resume && removeUnstartedRunDir(runDir)) {
    lines.push(`nothing was trained, and the run directory ${runDir.dir} was removed: run the same command again once the cause is fixed`);
  } else {
    const newest = listCheckpoints(runDir.paths.checkpoints)[0];
    const kept = `the run directory ${runDir.dir} is kept (${newest ? `newest checkpoint: step ${newest.step}` : 'no checkpoint yet'})`;
    lines.push(
      diverged
        ? `${kept}; start a new run with a changed config under another output.runName (or remove that directory first)`
        : `${kept}; once the cause is fixed, continue it with:\n  ${resumeCommand(runDir)}\nor start afresh under another output.runName`,
    );
  }
  return lines.join('\n') + '\n';
}

function resumeCommand(runDir: RunDir): string {
  return `cigl train --resume --output.runsDir ${path.dirname(runDir.dir)} --output.runName ${runDir.name}`;
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
