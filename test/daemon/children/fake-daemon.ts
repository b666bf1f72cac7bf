/**
 * Child process for the restart tests: `cigl daemon ARGS...` through the real command, with the fake
 * training job (step time from CIGL_FAKE_STEP_MS, default 20 ms) wired in as the `train` pipeline.
 */
import { buildCommands, runCommandLine } from '../../../src/cli/main';
import { defaultWiring } from '../../../src/cli/wiring';
import { fakeTrainJob } from '../fake-train-job';

const stepMs = Number(process.env.CIGL_FAKE_STEP_MS ?? 20);
const wiring = { ...defaultWiring, train: fakeTrainJob({ stepMs }) };
runCommandLine(['daemon', ...process.argv.slice(2)], buildCommands(wiring), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd() }).then(
  (code) => (process.exitCode = code),
  (err: Error) => {
    process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  },
);
