import * as fs from 'node:fs';
import * as path from 'node:path';
import t, { type Test } from 'tap';
import {
  listCheckpoints,
  loadCheckpoint,
  loadLatestCheckpoint,
  writeCheckpoint,
  type Checkpoint,
} from '../../src/sinks/checkpoint';
import { spawnNode } from '../helpers/child-process';
import { checkpointForStep, type TestState } from './children/checkpoint-content';

const writerScript = path.join(__dirname, 'children', 'checkpoint-writer.js');

function bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Bit-exact comparison of every array and deep equality of the state. */
function sameCheckpoint(t: Test, actual: Checkpoint<unknown>, expected: Checkpoint<unknown>): void {
  t.equal(actual.step, expected.step, 'step');
  t.same(actual.state, expected.state, 'state');
  t.same(Object.keys(actual.arrays).sort(), Object.keys(expected.arrays).sort(), 'groups');
  for (const [group, named] of Object.entries(expected.arrays)) {
    for (const [name, array] of Object.entries(named)) {
      const got = actual.arrays[group]?.[name];
      t.same(got?.shape, array.shape, `${group}/${name} shape`);
      t.ok(got && Buffer.compare(Buffer.from(bits(got.values).buffer), Buffer.from(bits(array.values).buffer)) === 0, `${group}/${name} bit-exact`);
    }
  }
}

t.test('round trip is bit-exact; keeps the last K; latest points at the newest', async (t) => {
  const dir = path.join(t.testdir(), 'checkpoints');
  const nan = new Float32Array(2);
  new Uint32Array(nan.buffer).set([0x7fc00123, 0x80000000]);
  const first: Checkpoint = { step: 0, arrays: { weights: { w: { shape: [2], values: nan } }, empty: {} }, state: { a: [1, 2.5e-300], b: null } };
  const written = writeCheckpoint(dir, first);
  t.equal(path.basename(written), 'step-0000000000');
  const back = loadCheckpoint(written);
  sameCheckpoint(t, back, { ...first, arrays: { weights: first.arrays.weights } });

  for (const step of [10, 20, 30]) writeCheckpoint(dir, checkpointForStep(step, 64));
  t.same(listCheckpoints(dir).map((c) => c.step), [30, 20], 'default keep = 2');
  t.equal(fs.readFileSync(path.join(dir, 'latest'), 'utf8').trim(), 'step-0000000030');
  const latest = loadLatestCheckpoint<TestState>(dir)!;
  sameCheckpoint(t, latest, checkpointForStep(30, 64));
  t.same(latest.skipped, []);
  t.match(JSON.parse(fs.readFileSync(path.join(latest.dir, 'state.json'), 'utf8')), { step: 30, state: { note: 'step 30' } });

  writeCheckpoint(dir, checkpointForStep(40, 64), { keep: 3 });
  t.same(listCheckpoints(dir).map((c) => c.step), [40, 30, 20]);
  // Taking the same step again (after a resume) replaces it.
  const again = { ...checkpointForStep(40, 64), state: { retaken: true } };
  writeCheckpoint(dir, again, { keep: 3 });
  sameCheckpoint(t, loadLatestCheckpoint(dir)!, again);
  t.same(fs.readdirSync(dir).filter((e) => e.startsWith('.')), [], 'no temporary leftovers');
});

t.test('the loader skips corrupt and half-written checkpoints and explains why', async (t) => {
  const dir = path.join(t.testdir(), 'checkpoints');
  t.equal(loadLatestCheckpoint(dir), undefined, 'no directory: nothing to resume');
  writeCheckpoint(dir, checkpointForStep(1, 64));
  writeCheckpoint(dir, checkpointForStep(2, 64));
  // A killed writer's temporary directory with a higher step is ignored.
  fs.mkdirSync(path.join(dir, '.tmp-step-0000000003-999'));
  fs.writeFileSync(path.join(dir, '.tmp-step-0000000003-999', 'checkpoint.bin'), 'partial');
  const newest = path.join(dir, 'step-0000000002', 'checkpoint.bin');
  const bytes = fs.readFileSync(newest);
  bytes[100] ^= 1;
  fs.writeFileSync(newest, bytes);

  const loaded = loadLatestCheckpoint<TestState>(dir)!;
  sameCheckpoint(t, loaded, checkpointForStep(1, 64));
  t.equal(loaded.skipped.length, 1);
  t.match(loaded.skipped[0].reason, /step-0000000002\/checkpoint\.bin: checksum mismatch/);

  fs.rmSync(path.join(dir, 'step-0000000001', 'checkpoint.bin'));
  t.throws(() => loadLatestCheckpoint(dir), /no valid checkpoint in .*checkpoints:\n.*checksum mismatch[^\n]*\n.*cannot read checkpoint \(ENOENT\)/);
});

t.test('refuses state JSON cannot store and arrays that do not match their shape', async (t) => {
  const dir = t.testdir();
  t.throws(() => writeCheckpoint(dir, { step: 1, arrays: {}, state: { loss: NaN } }), /checkpoint state\.loss is NaN/);
  t.throws(() => writeCheckpoint(dir, { step: 1, arrays: {}, state: { at: new Date() } }), /state\.at is not plain JSON \(Date\)/);
  t.throws(
    () => writeCheckpoint(dir, { step: 1, arrays: { weights: { w: { shape: [3], values: new Float32Array(2) } } }, state: {} }),
    /weights\/w: shape \[3\] does not match/,
  );
  t.throws(() => writeCheckpoint(dir, { step: -1, arrays: {}, state: {} }), /non-negative integer/);
  t.same(listCheckpoints(dir), []);
});

t.test('kill -9 between writing and committing leaves the previous checkpoint loadable', async (t) => {
  const dir = path.join(t.testdir(), 'checkpoints');
  const child = spawnNode(writerScript, [dir, '3']);
  await child.waitForLine((l) => l === 'pausing 3');
  child.process.kill('SIGKILL');
  t.equal((await child.exited).signal, 'SIGKILL');
  t.ok(
    fs.readdirSync(dir).some((e) => e.startsWith('.tmp-step-0000000003')),
    'the half-finished step-3 checkpoint is on disk as a temporary directory',
  );
  const loaded = loadLatestCheckpoint<TestState>(dir)!;
  sameCheckpoint(t, loaded, checkpointForStep(2));
  // The next writer cleans the leftover up.
  writeCheckpoint(dir, checkpointForStep(3, 64));
  t.notOk(fs.readdirSync(dir).some((e) => e.startsWith('.tmp-')));
});

t.test('kill -9 at an arbitrary moment of a checkpoint loop leaves a complete checkpoint', async (t) => {
  const dir = path.join(t.testdir(), 'checkpoints');
  const child = spawnNode(writerScript, [dir]);
  const line = await child.waitForLine((l) => l === 'saved 3');
  child.process.kill('SIGKILL'); // most likely while step 4 is being written
  await child.exited;
  const loaded = loadLatestCheckpoint<TestState>(dir)!;
  t.ok(loaded.step >= Number(line.split(' ')[1]), `loaded step ${loaded.step}`);
  sameCheckpoint(t, loaded, checkpointForStep(loaded.step));
});
