import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { spawnNode } from '../helpers/child-process';
import { ciglBin, tinyRunWorkspace } from '../helpers/tiny-run';

/**
 * A full disk mid-run, for real: the run directory lies on a small tmpfs, filled so that the first
 * checkpoints fit and a later one does not. Mounting needs root (as CI and the developers' machines
 * run); elsewhere the test is skipped with the reason.
 */
const MiB = 1024 * 1024;

function mountTmpfs(dir: string, sizeMiB: number): string | undefined {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`;
  }
}

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Why no tmpfs can be mounted here, if none can (tried on a probe folder). */
function tmpfsUnavailable(): string | false {
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-tmpfs-probe-'));
  const problem = mountTmpfs(probe, 1);
  if (!problem) execFileSync('umount', [probe]);
  fs.rmSync(probe, { recursive: true, force: true });
  return problem ?? false;
}

t.test('ENOSPC mid-run: the error names the file, no half-written checkpoint stays, and --resume finishes the run once space is freed', { skip: tmpfsUnavailable() }, async (t) => {
  const ws = tinyRunWorkspace();
  t.teardown(ws.cleanup);
  const disk = path.join(ws.dir, 'disk');
  const problem = mountTmpfs(disk, 128);
  if (problem) throw new Error(problem);
  t.teardown(() => execFileSync('umount', [disk]));
  const train = (runsDir: string, ...more: string[]) => spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runsDir', runsDir, '--output.runName', 'full', ...more]).exited;

  // An uninterrupted run on the ordinary disk, to compare with; its checkpoint size sets the filler.
  const straight = await train(ws.runsDir);
  t.equal(straight.code, 0, straight.stderr);
  const checkpointBytes = dirBytes(path.join(ws.runsDir, 'full', 'checkpoints')) / 2; // it keeps two
  t.ok(checkpointBytes > 1 * MiB, `a checkpoint takes ${(checkpointBytes / MiB).toFixed(1)} MiB`);

  // Room for the logs and one checkpoint, not for the second (written while the first is kept).
  const filler = path.join(disk, 'filler');
  const room = Math.round(1.5 * checkpointBytes);
  fs.writeFileSync(filler, Buffer.alloc(Math.max(0, freeBytes(disk) - room)));
  const runsDir = path.join(disk, 'runs');
  const full = await train(runsDir);
  t.equal(full.code, 1, `exit status 1 (failed)\n${full.stderr}`);
  const checkpoints = path.join(runsDir, 'full', 'checkpoints');
  t.match(full.stderr, new RegExp(`cannot write ${escape(checkpoints)}/\\.tmp-step-\\d{10}-\\d+/checkpoint\\.bin: ENOSPC: no space left on device`), 'the error names the file');
  const kept = /the run directory .*full is kept \(newest checkpoint: step (\d+)\); once the cause is fixed, continue it with:\n  cigl train --resume/.exec(full.stderr);
  t.ok(kept, 'it says what is kept and how to continue');
  const keptStep = Number(kept?.[1]);
  t.ok(keptStep >= 1 && keptStep < 20, `stopped part-way, at the checkpoint of step ${keptStep}`);
  t.same(fs.readdirSync(checkpoints).filter((e) => e.startsWith('.tmp-')), [], 'no half-written checkpoint left behind');

  fs.rmSync(filler);
  const resumed = await train(runsDir, '--resume');
  t.equal(resumed.code, 0, resumed.stderr);
  t.match(resumed.stderr, new RegExp(`resumed from .*step-${String(keptStep).padStart(10, '0')}`));
  for (const file of ['model/weights.bin', 'model/weights.cigl-sparse']) {
    const a = fs.readFileSync(path.join(runsDir, 'full', file));
    const b = fs.readFileSync(path.join(ws.runsDir, 'full', file));
    t.ok(a.equals(b), `${file} is bit-identical to the uninterrupted run's`);
  }
});

function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return total;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
