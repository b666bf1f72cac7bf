import type { RunLiveStats } from './run-activity';
import type { RunRecord, RunState } from './run-queue';

/** How a run is shown to clients (run list, status events): the record's state plus the config's headline. */
export interface RunView {
  readonly id: string;
  readonly pipeline: string;
  readonly state: RunState;
  readonly method: string;
  readonly model: string;
  readonly density: number;
  readonly seed: number;
  readonly epochs: number;
  readonly configHash: string;
  readonly submittedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly attempts: number;
  readonly interrupted?: boolean;
  readonly cancelRequested?: boolean;
  /** The latest step: live while the run trains here, else as last settled. */
  readonly step?: number;
  readonly imagesPerSecond?: number;
  readonly error?: string;
}

export function runView(record: RunRecord, live?: RunLiveStats): RunView {
  const { config } = record;
  return {
    id: record.id,
    pipeline: record.pipeline,
    state: record.state,
    method: config.sparse.method,
    model: config.model.name,
    density: config.sparse.density,
    seed: config.seed,
    epochs: config.train.epochs,
    configHash: record.configHash,
    submittedAt: record.submittedAt,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    attempts: record.attempts,
    interrupted: record.interrupted,
    cancelRequested: record.cancelRequested,
    step: live && record.state === 'running' ? live.step : record.step,
    imagesPerSecond: live && record.state === 'running' ? live.imagesPerSecond : undefined,
    error: record.error,
  };
}
