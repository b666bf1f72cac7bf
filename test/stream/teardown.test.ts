import { execFile } from 'node:child_process';
import * as path from 'node:path';
import t from 'tap';
import { repoRoot } from '../../src/util/paths';

/**
 * Runs a script in a fresh node process that does NOT call process.exit: it ends only if the stream
 * left no threads, ports or timers behind. The 60 s limit only guards against a hang.
 */
function runChild(body: string): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const dist = path.join(repoRoot, 'dist', 'src');
  const script = `
    const { batchStream, evalStream } = require(${JSON.stringify(path.join(dist, 'stream', 'batch-stream'))});
    const { withSharedPixels } = require(${JSON.stringify(path.join(dist, 'data', 'shared-memory'))});
    const rxjs = require('rxjs');
    const fs = require('fs');
    const count = 64;
    const images = new Uint8Array(count * 8 * 8 * 3).map((_, i) => (i * 31) % 256);
    const dataset = withSharedPixels({ source: 'child', count, height: 8, width: 8, channels: 3, images,
      labels: new Int32Array(count), classNames: ['a'] });
    // What keeps the event loop alive, less the stdout/stderr pipes to the parent.
    const alive = () => JSON.stringify(process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap' && r !== 'TTYWrap'));
    const common = { dataset, stats: { mean: [0.5, 0.5, 0.5], std: [0.2, 0.2, 0.2] }, batchSize: 8, seed: 5, workers: 2 };
    // OS threads of this process (Linux): worker threads that were never stopped still count here even
    // when unref'd. Measured after libuv's own thread pool has started (fs.stat uses it).
    const threads = () => fs.existsSync('/proc/self/status')
      ? Number(/Threads:\\s+(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) : -1;
    fs.stat(process.execPath, () => {
      const baseThreads = threads();
      process.on('beforeExit', () => console.log('threads left:', threads() - baseThreads));
      ${body}
    });
  `;
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', script], { cwd: repoRoot, timeout: 60_000 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number; signal?: string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

t.test('unsubscribing mid-stream from an endless stream lets the process exit', async (t) => {
  const r = await runChild(`
    const sub = batchStream({ ...common, epochs: Infinity, prefetch: 6 }).pipe(rxjs.take(5)).subscribe({
      next: (b) => console.log('batch', b.epoch, b.index),
      complete: () => console.log('taken'),
    });
    process.on('beforeExit', () => console.log('handles left beyond stdio:', alive()));
  `);
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
  t.match(r.stdout, /batch 0 4\ntaken\n/);
  t.match(r.stdout, /handles left beyond stdio: \[\]/);
  t.match(r.stdout, /threads left: 0\n/, 'every worker thread was stopped');
});

t.test('a stream that completes, and one unsubscribed before any batch, leave no handles', async (t) => {
  const r = await runChild(`
    rxjs.lastValueFrom(evalStream({ ...common, batchSize: 16 }).pipe(rxjs.toArray())).then((bs) => {
      console.log('eval batches', bs.length);
      const early = batchStream({ ...common, epochs: 3 }).subscribe();
      early.unsubscribe();
      console.log('unsubscribed at once');
    });
    process.on('beforeExit', () => console.log('handles left beyond stdio:', alive()));
  `);
  t.same({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
  t.match(r.stdout, /eval batches 4\nunsubscribed at once\n/);
  t.match(r.stdout, /handles left beyond stdio: \[\]/);
  t.match(r.stdout, /threads left: 0\n/, 'every worker thread was stopped');
});
