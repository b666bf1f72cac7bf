import * as path from 'node:path';
import { Worker as Thread } from 'node:worker_threads';
import { Subject, type Observable } from 'rxjs';

/**
 * Renews the locks of the runs this daemon holds in the Redis queue, from a thread of its own: training
 * is CPU-bound and can keep the main event loop busy for seconds (model set-up, evaluation, a loaded
 * machine), and a lock renewed from there would expire under a live daemon, handing its run to another
 * one. The thread dies with the process, so a daemon that is killed or loses its machine still stops
 * renewing and its runs move on once their locks expire. A renewal Redis refuses (the lock expired and
 * the run went back to the queue, or another daemon holds it) is reported on `lost$`.
 */
export interface LockKeeperOptions {
  readonly url: string;
  readonly queueName: string;
  readonly prefix: string;
  readonly lockDurationMs: number;
}

/** Messages to the thread. */
export type LockKeeperCommand = { readonly hold: { readonly id: string; readonly token: string } } | { readonly release: string } | { readonly close: true };
/** Messages from the thread. */
export type LockKeeperReport = { readonly ready: true } | { readonly lost: string } | { readonly closed: true };

export class LockKeeper {
  private readonly thread: Thread;
  private readonly lost = new Subject<string>();
  readonly lost$: Observable<string> = this.lost.asObservable();
  private closing?: Promise<void>;
  /** Resolves once the thread is connected: claim nothing before, or a lock could expire while the thread loads. */
  readonly ready: Promise<void>;

  constructor(options: LockKeeperOptions) {
    this.thread = new Thread(path.join(__dirname, 'lock-keeper-thread.js'), { workerData: options });
    this.ready = new Promise<void>((resolve, reject) => {
      this.thread.on('message', (report: LockKeeperReport) => ('ready' in report ? resolve() : undefined));
      this.thread.once('error', reject);
    });
    this.ready.catch(() => undefined); // reported by the claim that awaits it
    this.thread.on('message', (report: LockKeeperReport) => {
      if ('lost' in report) this.lost.next(report.lost);
    });
    this.thread.on('error', (err) => process.stderr.write(`cigl daemon: the lock renewal thread failed: ${err.message}\n`));
    this.thread.unref();
  }

  hold(id: string, token: string): void {
    this.send({ hold: { id, token } });
  }

  /** Stops renewing (the run was settled). */
  release(id: string): void {
    this.send({ release: id });
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => {
        this.thread.on('message', (report: LockKeeperReport) => ('closed' in report ? resolve() : undefined));
        this.thread.once('exit', () => resolve());
      });
      this.send({ close: true });
      await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
      await this.thread.terminate();
      this.lost.complete();
    })());
  }

  private send(command: LockKeeperCommand): void {
    this.thread.postMessage(command);
  }
}
