/**
 * Child process for the signal tests: a fake training loop that checks the stop signal after each step.
 * Usage: node graceful-loop.js [stubborn]
 * Normal: on a requested stop it prints "checkpoint at N" and exits as `cigl train` does (130 after
 * SIGINT, 143 after SIGTERM). Stubborn: it ignores the request
 * (as a hung pipeline would), so only the second signal ends it.
 */
import { exitCodeOfStop } from '../../../src/cli/exit-codes';
import { installGracefulStop } from '../../../src/cli/signals';

const stubborn = process.argv[2] === 'stubborn';
const stop = installGracefulStop({ log: (m) => process.stdout.write(`log ${m}\n`) });
let step = 0;
const loop = () => {
  step++;
  if (step === 1) process.stdout.write('ready\n');
  if (stop.signal.aborted && !stubborn) {
    process.stdout.write(`checkpoint at ${step} (${String(stop.signal.reason)})\n`);
    stop.dispose();
    process.exitCode = exitCodeOfStop(stop.signal.reason);
    return;
  }
  setTimeout(loop, 5);
};
loop();
