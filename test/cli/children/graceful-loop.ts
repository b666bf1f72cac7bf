/**
 * Child process for the signal tests: a fake training loop that checks the stop signal after each step.
 * Usage: node graceful-loop.js [stubborn]
 * Normal: on a requested stop it prints "checkpoint at N" and exits 0. Stubborn: it ignores the request
 * (as a hung pipeline would), so only the second signal ends it.
 */
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
    return; // nothing left on the event loop: exit 0
  }
  setTimeout(loop, 5);
};
loop();
