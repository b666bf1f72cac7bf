/**
 * Child process for the unwritable-output test when the tests run as root (root ignores permission
 * bits). It starts as root, so that it can load its modules wherever the checkout lives, then drops to
 * the unprivileged user "nobody" and tries to prepare a run directory. Prints the error message, or
 * "created".
 * Usage: node prepare-run-dir.js RUNS_DIR
 */
import { resolveConfig } from '../../../src/config/config';
import { prepareRunDir } from '../../../src/sinks/run-dir';

const NOBODY = 65534;
process.setgid!(NOBODY);
process.setuid!(NOBODY);
try {
  prepareRunDir(resolveConfig({ overrides: [{ path: 'output.runsDir', raw: process.argv[2], origin: 'test' }] }));
  process.stdout.write('created\n');
} catch (err) {
  process.stdout.write(`${(err as Error).message}\n`);
}
