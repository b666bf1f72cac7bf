/**
 * Child process of signals.test.ts: runs the addon's oneDNN calls (a dense layer's GEMMs, a 1×1
 * convolution) for a few seconds while signals arrive, then prints one JSON line with what it did.
 * `storm`: the parent sends SIGUSR2 as fast as it can (a handler counts them); `profile`: the inspector's
 * CPU profiler samples every 100 µs (SIGPROF to this thread).
 */
import { Session } from 'node:inspector';
import { requireNativeAddon } from '../../src/compute/native-addon';

const [mode, secondsArg] = process.argv.slice(2);
const addon = requireNativeAddon();
const n = 256;
const x = new Float32Array(128 * n).fill(0.5);
const w = new Float32Array(n * n).fill(0.01);
const bias = new Float32Array(n);
const y = new Float32Array(128 * n);
const dx = new Float32Array(128 * n);
const dw = new Float32Array(n * n);
// batch 8, 16×16, 64 → 64 channels, 1×1, stride 1, no padding
const geometry = [8, 16, 16, 64, 64, 1, 1, 1, 1, 16, 16, 0, 0, 0, 0];
const image = new Float32Array(8 * 16 * 16 * 64).fill(0.25);
const filter = new Float32Array(64 * 64).fill(0.01);
const convOut = new Float32Array(8 * 16 * 16 * 64);

let handled = 0;
process.on('SIGUSR2', () => handled++);

function post<T>(session: Session, method: string, params?: object): Promise<T> {
  return new Promise((resolve, reject) => session.post(method, params ?? {}, (e, r) => (e ? reject(e) : resolve(r as T))));
}

async function main(): Promise<void> {
  const session = new Session();
  if (mode === 'profile') {
    session.connect();
    await post(session, 'Profiler.enable');
    await post(session, 'Profiler.setSamplingInterval', { interval: 100 });
    await post(session, 'Profiler.start');
  }
  console.log('ready');
  const end = Date.now() + Number(secondsArg) * 1000;
  let calls = 0;
  while (Date.now() < end) {
    for (let i = 0; i < 20; i++) {
      addon.denseForward(128, n, n, x, w, bias, false, y);
      addon.denseBackwardData(128, n, n, y, w, dx);
      addon.denseBackwardWeights(128, n, n, x, y, dw);
      addon.convForward(geometry, image, filter, convOut);
      calls += 4;
    }
    // Let the event loop run the signal handlers.
    await new Promise((resolve) => setImmediate(resolve));
  }
  let samples = 0;
  if (mode === 'profile') samples = (await post<{ profile: { samples?: number[] } }>(session, 'Profiler.stop')).profile.samples?.length ?? 0;
  console.log(JSON.stringify({ calls, handled, samples }));
  // The parent stops sending once it reads the line above; exit only when the signals have stopped, so
  // none arrives while the process tears its handlers down.
  let seen = -1;
  while (seen !== handled) {
    seen = handled;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

main().catch((e: Error) => {
  console.error(e.stack);
  process.exit(1);
});
