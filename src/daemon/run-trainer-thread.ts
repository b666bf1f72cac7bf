import { parentPort, workerData } from 'node:worker_threads';
import { defer, finalize, tap, type MonoTypeOperatorFunction } from 'rxjs';
import type { TextOutput } from '../job/io';
import type { ProgressOptions } from '../report/progress';
import type { TrainJob, TrainOutcome } from '../job/jobs';
import type { TrainEvent } from '../train/events';
import { threadError, type ThreadMemory, type TrainerCommand, type TrainerReport, type TrainerThreadData } from './run-trainer';

/** The thread of trainInThread (run-trainer.ts): runs one TrainJob with the job runner it is given. */
const data = workerData as TrainerThreadData;
const port = parentPort!;
const report = (message: TrainerReport) => port.postMessage(message);

const controller = new AbortController();
port.on('message', (command: TrainerCommand) => {
  if ('stop' in command && !controller.signal.aborted) controller.abort(command.stop);
});

const output = (stream: 'stdout' | 'stderr'): TextOutput => ({
  write: (text: string) => report({ write: { stream, text: String(text) } }),
  isTTY: data.io[stream].isTTY,
  columns: data.io[stream].columns,
});

let progressIds = 0;
const progress = (options: ProgressOptions = {}): MonoTypeOperatorFunction<TrainEvent> => (source) =>
  defer(() => {
    const id = progressIds++;
    // Functions (a test clock) cannot cross threads; the daemon's side keeps its own.
    report({ progress: { id, options: JSON.parse(JSON.stringify(options)) as ProgressOptions } });
    return source.pipe(
      tap((event) => {
        report({ event: { id, event: portable(event) } });
        if (event.type === 'step') reportMemory();
      }),
      finalize(() => report({ progressEnd: id })),
    );
  });

/** Snapshots carry every weight: the daemon's stages only need to know that one was taken. */
function portable(event: TrainEvent): TrainEvent {
  return event.type === 'snapshot' ? { ...event, weights: {}, masks: {} } : event;
}

/** tf.memory() of this thread's tfjs engine, for the daemon's /metrics; only when the job loaded tfjs. */
function reportMemory(): void {
  const tf = require.cache[require.resolve('@tensorflow/tfjs-core')]?.exports as { memory(): ThreadMemory } | undefined;
  if (!tf) return;
  const { numTensors, numBytes } = tf.memory();
  report({ memory: { numTensors, numBytes } });
}

async function main(): Promise<TrainOutcome> {
  const runnerModule = require(data.runner.module) as Record<string, unknown>;
  const factory = runnerModule[data.runner.export];
  if (typeof factory !== 'function') throw new Error(`${data.runner.module} exports no function ${data.runner.export}`);
  const train = (factory as (options: unknown) => (job: TrainJob) => Promise<TrainOutcome>)(data.runner.options);
  return train({ ...data.job, stop: controller.signal, progress, io: { cwd: data.io.cwd, stdout: output('stdout'), stderr: output('stderr') } });
}

main().then(
  (outcome) => report({ outcome }),
  (err: unknown) => report({ failed: threadError(err) }),
);
