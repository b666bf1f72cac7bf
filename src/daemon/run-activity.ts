import { tap, type MonoTypeOperatorFunction } from 'rxjs';
import type { TrainEvent } from '../train/events';

/**
 * What the runs in this process are doing right now, taken from their event streams (not from the
 * logs on disk, which are flushed only every few seconds): for `GET /metrics` and run status.
 */
export interface RunLiveStats {
  readonly step: number;
  readonly epoch: number;
  readonly imagesPerSecond: number;
  readonly loss: number;
  /** Date.now() of the latest step. */
  readonly updatedAt: number;
  /** tf.memory() of the run's trainer thread after its latest step, when the job uses tfjs. */
  readonly tensors?: number;
  readonly tensorBytes?: number;
}

export class RunActivity {
  private readonly live = new Map<string, RunLiveStats>();

  /** A pass-through stage that records the step events of run `id`. */
  track(id: string): MonoTypeOperatorFunction<TrainEvent> {
    return tap((event) => {
      if (event.type !== 'step') return;
      const before = this.live.get(id);
      this.live.set(id, {
        step: event.step, epoch: event.epoch, imagesPerSecond: event.imagesPerSecond, loss: event.loss, updatedAt: Date.now(),
        tensors: before?.tensors, tensorBytes: before?.tensorBytes,
      });
    });
  }

  /** Records the tensors the trainer of run `id` holds (reported by its thread). */
  recordMemory(id: string, memory: { readonly numTensors: number; readonly numBytes: number }): void {
    const live = this.live.get(id);
    if (live) this.live.set(id, { ...live, tensors: memory.numTensors, tensorBytes: memory.numBytes });
  }

  get(id: string): RunLiveStats | undefined {
    return this.live.get(id);
  }

  /** Stops reporting run `id` (it ended or left this process). */
  forget(id: string): void {
    this.live.delete(id);
  }

  /** Every tracked run. */
  entries(): [string, RunLiveStats][] {
    return [...this.live];
  }
}
