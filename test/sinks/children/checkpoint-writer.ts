/**
 * Child process for the checkpoint kill -9 tests. Writes checkpoints for steps 1, 2, 3, ... (arrays whose
 * values are a function of the step) and prints `saved N` after each commit.
 * Usage: node checkpoint-writer.js DIR [pause-at-step]
 * With pause-at-step, it prints `pausing N` just before committing that step and waits to be killed.
 */
import { writeCheckpoint } from '../../../src/sinks/checkpoint';
import { checkpointForStep } from './checkpoint-content';

const [dir, pauseArg] = process.argv.slice(2);
const pauseAt = pauseArg === undefined ? -1 : Number(pauseArg);
for (let step = 1; ; step++) {
  writeCheckpoint(dir, checkpointForStep(step), {
    beforeCommit: () => {
      if (step !== pauseAt) return;
      process.stdout.write(`pausing ${step}\n`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // until killed
    },
  });
  process.stdout.write(`saved ${step}\n`);
}
