import { tap, type MonoTypeOperatorFunction } from 'rxjs';
import type { EpochEndEvent, MaskUpdateEvent, StepEvent, TrainEvent } from '../train/events';
import type { TextOutput } from '../job/io';

/**
 * A pass-through stage that shows training progress: on a terminal a one-line bar redrawn in place
 * (throttled) with epoch summaries scrolling above it; otherwise (a log file, CI) plain lines every
 * `logEverySteps` steps and at every epoch end and mask update.
 */
export interface ProgressOptions {
  /** Steps of the whole run, for the bar and the ETA. */
  readonly totalSteps?: number;
  readonly epochs?: number;
  /** Plain-output step line interval; default 50. */
  readonly logEverySteps?: number;
  /** Bar redraw interval; default 100 ms. */
  readonly redrawMs?: number;
  /** Clock (ms); default Date.now. */
  readonly now?: () => number;
}

export function reportProgress(out: TextOutput, options: ProgressOptions = {}): MonoTypeOperatorFunction<TrainEvent> {
  return (source) => {
    const progress = new ProgressPrinter(out, options);
    return source.pipe(
      tap({
        next: (event) => progress.event(event),
        complete: () => progress.finish(),
        error: () => progress.finish(),
        unsubscribe: () => progress.finish(),
      }),
    );
  };
}

class ProgressPrinter {
  private readonly tty: boolean;
  private readonly logEvery: number;
  private readonly redrawMs: number;
  private readonly now: () => number;
  private barShown = false;
  private lastDraw = -Infinity;
  private firstStep?: { step: number; at: number };

  constructor(
    private readonly out: TextOutput,
    private readonly options: ProgressOptions,
  ) {
    this.tty = out.isTTY === true;
    this.logEvery = options.logEverySteps ?? 50;
    this.redrawMs = options.redrawMs ?? 100;
    this.now = options.now ?? Date.now;
  }

  event(event: TrainEvent): void {
    switch (event.type) {
      case 'step':
        return this.step(event);
      case 'epochEnd':
        return this.line(formatEpochLine(event, this.options.epochs));
      case 'maskUpdate':
        if (!this.tty) this.line(formatMaskLine(event));
        return;
      case 'snapshot':
        if (!this.tty) this.line(`snapshot  epoch ${event.epoch + 1}  step ${event.step}`);
        return;
    }
  }

  finish(): void {
    if (this.barShown) this.out.write('\n');
    this.barShown = false;
  }

  private step(event: StepEvent): void {
    const at = this.now();
    this.firstStep ??= { step: event.step, at };
    const eta = this.eta(event.step, at);
    if (!this.tty) {
      if (event.step % this.logEvery === 0) this.line(formatStepLine(event, this.options, eta));
      return;
    }
    const last = this.options.totalSteps !== undefined && event.step + 1 >= this.options.totalSteps;
    if (at - this.lastDraw < this.redrawMs && !last) return;
    this.lastDraw = at;
    const width = Math.max(40, (this.out.columns ?? 100) - 1);
    this.out.write(`\r${formatBarLine(event, this.options, eta, width)}\x1b[K`);
    this.barShown = true;
  }

  /** A full line; on a terminal it goes above the bar, which the next step redraws. */
  private line(text: string): void {
    this.out.write(this.barShown ? `\r${text}\x1b[K\n` : `${text}\n`);
    this.barShown = false;
  }

  private eta(step: number, at: number): number | undefined {
    const { totalSteps } = this.options;
    const first = this.firstStep!;
    if (totalSteps === undefined || step <= first.step) return undefined;
    return ((at - first.at) / (step - first.step)) * Math.max(0, totalSteps - step - 1);
  }
}

export function formatStepLine(event: StepEvent, options: ProgressOptions, etaMs?: number): string {
  const parts = [
    `step ${event.step + 1}${options.totalSteps ? `/${options.totalSteps}` : ''}`,
    `epoch ${event.epoch + 1}${options.epochs ? `/${options.epochs}` : ''}`,
    `loss ${event.loss.toFixed(4)}`,
    `acc ${(100 * event.accuracy).toFixed(1)}%`,
    `lr ${event.lr.toPrecision(3)}`,
    `${Math.round(event.imagesPerSecond)} img/s`,
  ];
  if (etaMs !== undefined) parts.push(`ETA ${formatDuration(etaMs)}`);
  return parts.join('  ');
}

/** `[#####.....]  45.0%  step ...`, cut to `width` characters. */
export function formatBarLine(event: StepEvent, options: ProgressOptions, etaMs: number | undefined, width: number): string {
  const text = formatStepLine(event, options, etaMs);
  if (!options.totalSteps) return text.slice(0, width);
  const fraction = Math.min(1, (event.step + 1) / options.totalSteps);
  const barWidth = Math.max(10, Math.min(30, width - text.length - 10));
  const filled = Math.round(fraction * barWidth);
  return `[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${(100 * fraction).toFixed(1).padStart(5)}%  ${text}`.slice(0, width);
}

export function formatEpochLine(event: EpochEndEvent, epochs?: number): string {
  let text = `epoch ${event.epoch + 1}${epochs ? `/${epochs}` : ''} done  train loss ${event.trainLoss.toFixed(4)} acc ${(100 * event.trainAccuracy).toFixed(1)}%`;
  if (event.validationLoss !== undefined) text += `  val loss ${event.validationLoss.toFixed(4)}`;
  if (event.validationAccuracy !== undefined) text += ` acc ${(100 * event.validationAccuracy).toFixed(1)}%`;
  if (event.validationEce !== undefined) text += ` ECE15 ${event.validationEce.toFixed(4)}`;
  if (event.testLoss !== undefined) text += `  test loss ${event.testLoss.toFixed(4)}`;
  if (event.testAccuracy !== undefined) text += ` acc ${(100 * event.testAccuracy).toFixed(1)}%`;
  if (event.testEce !== undefined) text += ` ECE15 ${event.testEce.toFixed(4)}`;
  return text;
}

export function formatMaskLine(event: MaskUpdateEvent): string {
  const pruned = event.layers.reduce((n, l) => n + l.pruned, 0);
  const grown = event.layers.reduce((n, l) => n + l.grown, 0);
  const drop = event.layers[0]?.dropFraction;
  return `mask update  step ${event.step}  pruned ${pruned}  grown ${grown}${drop === undefined ? '' : `  drop fraction ${drop.toFixed(3)}`}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Progress of a pass over `total` images (cigl eval, cigl predict), as `done(n)` is told the count so
 * far: on a terminal one line redrawn in place (at most every `redrawMs`), otherwise a plain line every
 * `logEveryMs`. Short passes stay quiet: nothing is shown before `quietMs` have passed. `finish()` ends
 * the line.
 */
export function imageProgress(
  out: TextOutput,
  total: number,
  what: string,
  options: { readonly redrawMs?: number; readonly logEveryMs?: number; readonly quietMs?: number; readonly now?: () => number } = {},
): { done(count: number): void; finish(): void } {
  const now = options.now ?? Date.now;
  const started = now();
  const tty = out.isTTY === true;
  const every = tty ? (options.redrawMs ?? 100) : (options.logEveryMs ?? 5000);
  const quiet = options.quietMs ?? 1000;
  let last = started;
  let barOpen = false;
  const line = (count: number, at: number) => {
    const rate = at > started ? (count / (at - started)) * 1000 : 0;
    const eta = rate > 0 && count < total ? `  ETA ${formatDuration(((total - count) / rate) * 1000)}` : '';
    return `${what}: ${count}/${total} images (${((100 * count) / Math.max(1, total)).toFixed(0)}%)  ${Math.round(rate)} img/s${eta}`;
  };
  return {
    done(count) {
      const at = now();
      if (at - started < quiet || (at - last < every && count < total)) return;
      last = at;
      if (tty) {
        out.write(`\r${line(count, at)}\x1b[K`);
        barOpen = true;
      } else {
        out.write(`${line(count, at)}\n`);
      }
    },
    finish() {
      if (barOpen) out.write('\n');
      barOpen = false;
    },
  };
}
