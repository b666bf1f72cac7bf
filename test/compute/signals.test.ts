import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadNativeAddon, type NativeAddon } from '../../src/compute/native-addon';
import { spawnNode } from '../helpers/child-process';
import { nativeUnavailable } from './compare';

// oneDNN's GEMM kernels point the stack pointer at the heap while they run, so a signal taken inside one
// corrupts the heap (native/src/signal_guard.h). Before the guard, each child below aborted within its
// few seconds ("corrupted size vs. prev_size"); the signals must still reach their handlers.
const child = path.join(__dirname, 'signal-child.js');
const SECONDS = 3;
const HANG = 120_000;

/** The child's closing JSON line, or zeros when it died before printing it. */
function report(stdout: string): { calls: number; handled: number; samples: number } {
  const last = stdout.trim().split('\n').pop() ?? '';
  return last.startsWith('{') ? (JSON.parse(last) as { calls: number; handled: number; samples: number }) : { calls: 0, handled: 0, samples: 0 };
}

t.test('oneDNN calls on two threads survive a storm of signals, and the handler still runs', { skip: nativeUnavailable, timeout: HANG }, async (t) => {
  const c = spawnNode(child, ['storm', String(SECONDS)]);
  await c.waitForLine((line) => line === 'ready');
  let sent = 0;
  let storming = true;
  const fire = (): void => {
    if (!storming || !c.process.kill('SIGUSR2')) return;
    sent++;
    setImmediate(fire);
  };
  fire();
  try {
    await c.waitForLine((line) => line.startsWith('{'));
  } catch {
    // it died: the exit below says how
  } finally {
    storming = false;
  }
  const result = await c.exited;
  t.equal(result.code, 0, `the child exited cleanly (signal ${result.signal}; stderr: ${result.stderr.trim().slice(-300)})`);
  const r = report(result.stdout);
  t.ok(r.calls > 0, `${r.calls} oneDNN calls made`);
  t.ok(sent > 1000 && r.handled > 0, `${sent} signals sent, ${r.handled} handled (the kernel merges pending ones)`);
});

t.test("oneDNN calls survive the inspector's CPU profiler sampling every 100 µs", { skip: nativeUnavailable, timeout: HANG }, async (t) => {
  const result = await spawnNode(child, ['profile', String(SECONDS)]).exited;
  t.equal(result.code, 0, `the child exited cleanly (signal ${result.signal}; stderr: ${result.stderr.trim().slice(-300)})`);
  const r = report(result.stdout);
  t.ok(r.calls > 0 && r.samples > 100, `${r.calls} oneDNN calls, ${r.samples} profile samples`);
});

t.test('a oneDNN call leaves the calling thread taking signals as before', { skip: nativeUnavailable }, async (t) => {
  const addon = (loadNativeAddon() as { addon: NativeAddon }).addon;
  const blocked = (): string => /^SigBlk:\s*(\S+)$/m.exec(fs.readFileSync('/proc/thread-self/status', 'utf8'))![1];
  const before = blocked();
  const n = 64;
  addon.denseForward(8, n, n, new Float32Array(8 * n), new Float32Array(n * n), new Float32Array(n), false, new Float32Array(8 * n));
  t.equal(blocked(), before, 'the signal mask is the one it had before the call');
  let got = 0;
  const onSignal = (): void => {
    got++;
  };
  process.on('SIGUSR2', onSignal);
  try {
    process.kill(process.pid, 'SIGUSR2');
    await new Promise((resolve) => setTimeout(resolve, 50));
    t.equal(got, 1, 'a signal sent after the call is handled');
  } finally {
    process.off('SIGUSR2', onSignal);
  }
});
