/**
 * Child process for the kill -9 test: logs synthetic training events to an Arrow run log as fast as it
 * can and reports on stdout how many metric rows have reached the file, until it is killed.
 * Usage: node arrow-log-writer.js DIR
 */
import { ArrowRunLog } from '../../../src/sinks/arrow-log';
import { syntheticEvents } from './synthetic-events';

const dir = process.argv[2];
const log = ArrowRunLog.open(dir, 'child-run', { flushIntervalMs: 20 });
let step = 0;
let reported = -1;
setInterval(() => {
  for (const event of syntheticEvents(step, 5)) log.record(event);
  step += 5;
  if (log.metrics.rowsWritten !== reported) {
    reported = log.metrics.rowsWritten;
    process.stdout.write(`rows ${reported} mask ${log.maskStats.rowsWritten}\n`);
  }
}, 2);
