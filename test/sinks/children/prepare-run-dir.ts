/**
 * Child process for the unwritable-output test when the tests run as root (root ignores permission
 * bits, so the parent runs this as an unprivileged user). Prints the error message, or "created".
 * Usage: node prepare-run-dir.js RUNS_DIR
 */
import { resolveConfig } from '../../../src/cli/config';
import { prepareRunDir } from '../../../src/sinks/run-dir';

try {
  prepareRunDir(resolveConfig({ overrides: [{ path: 'output.runsDir', raw: process.argv[2], origin: 'test' }] }));
  process.stdout.write('created\n');
} catch (err) {
  process.stdout.write(`${(err as Error).message}\n`);
}
