import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { readCifarBinary } from '../../src/data/cifar-binary';
import { CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES } from '../../src/data/class-names';
import { isShared } from '../../src/data/shared-memory';
import { cifarRecords } from '../helpers/datasets';

const labels10 = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => [(i + offset) % 10]);

/** Pixel (y, x, c) of record r read straight from the channel-major file layout. */
function filePixel(file: Buffer, labelBytes: number, r: number, y: number, x: number, c: number): number {
  return file[r * (labelBytes + 3072) + labelBytes + c * 1024 + y * 32 + x];
}

t.test('CIFAR-10 folder: records, NHWC layout, labels, names from batches.meta.txt', async (t) => {
  const b1 = cifarRecords(3, labels10(3), 1);
  const b2 = cifarRecords(2, labels10(2, 7), 2);
  const test = cifarRecords(4, labels10(4, 5), 3);
  const dir = t.testdir({
    'data_batch_1.bin': b1,
    'data_batch_2.bin': b2,
    'test_batch.bin': test,
    'batches.meta.txt': 'a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n',
  });
  const { train, test: testSet } = await readCifarBinary(dir);
  t.equal(train.count, 5);
  t.same(Array.from(train.labels), [0, 1, 2, 7, 8]);
  t.same(train.classNames, ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8', 'a9']);
  t.same([train.height, train.width, train.channels], [32, 32, 3]);
  t.ok(isShared(train.images), 'pixels in shared memory');
  let mismatches = 0;
  for (const [n, file, r] of [[0, b1, 0], [2, b1, 2], [3, b2, 0], [4, b2, 1]] as const) {
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++)
          if (train.images[((n * 32 + y) * 32 + x) * 3 + c] !== filePixel(file, 1, r, y, x, c)) mismatches++;
  }
  t.equal(mismatches, 0, 'every pixel lands at its NHWC place');
  t.equal(testSet!.count, 4);
  t.same(Array.from(testSet!.labels), [5, 6, 7, 8]);
});

t.test('CIFAR-10: standard names without a meta file; parent folder of cifar-10-batches-bin', async (t) => {
  const dir = t.testdir({ 'cifar-10-batches-bin': { 'data_batch_1.bin': cifarRecords(2, labels10(2), 4) } });
  const { train, test } = await readCifarBinary(dir);
  t.same(train.classNames, CIFAR10_CLASSES);
  t.equal(train.count, 2);
  t.equal(test, undefined);
});

t.test('CIFAR-10 straight from a .tar.gz equals the extracted folder', async (t) => {
  const dir = t.testdir({
    'cifar-10-batches-bin': {
      'data_batch_1.bin': cifarRecords(3, labels10(3), 5),
      'data_batch_2.bin': cifarRecords(3, labels10(3, 3), 6),
      'test_batch.bin': cifarRecords(2, labels10(2), 7),
      'batches.meta.txt': CIFAR10_CLASSES.join('\n') + '\n',
    },
  });
  const archive = path.join(dir, 'cifar-10-binary.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', dir, 'cifar-10-batches-bin']);
  const fromFolder = await readCifarBinary(path.join(dir, 'cifar-10-batches-bin'));
  const fromArchive = await readCifarBinary(archive);
  t.equal(fromArchive.train.count, 6);
  t.same(Buffer.from(fromArchive.train.images), Buffer.from(fromFolder.train.images));
  t.same(fromArchive.train.labels, fromFolder.train.labels);
  t.same(Buffer.from(fromArchive.test!.images), Buffer.from(fromFolder.test!.images));
  t.same(fromArchive.train.classNames, CIFAR10_CLASSES);
});

t.test('CIFAR-100: fine labels by default, coarse on request, names files or standard names', async (t) => {
  const pairs = [[3, 42], [19, 99], [0, 0]];
  const train = cifarRecords(3, pairs, 8);
  const dir = t.testdir({
    'cifar-100-binary': {
      'train.bin': train,
      'test.bin': cifarRecords(1, [[1, 5]], 9),
      'coarse_label_names.txt': Array.from({ length: 20 }, (_, i) => `c${i}`).join('\n'),
    },
  });
  const fine = await readCifarBinary(dir);
  t.same(Array.from(fine.train.labels), [42, 99, 0]);
  t.same(fine.train.classNames, CIFAR100_FINE_CLASSES, 'no fine names file: standard names');
  t.equal(CIFAR100_FINE_CLASSES.length, 100);
  t.equal(CIFAR100_COARSE_CLASSES.length, 20);
  t.equal(filePixel(train, 2, 1, 5, 6, 2), fine.train.images[((1 * 32 + 5) * 32 + 6) * 3 + 2]);
  const coarse = await readCifarBinary(dir, { label: 'coarse' });
  t.same(Array.from(coarse.train.labels), [3, 19, 0]);
  t.equal(coarse.train.classNames[19], 'c19', 'names from coarse_label_names.txt');
  t.same(Array.from(coarse.test!.labels), [1]);
});

t.test('bad CIFAR input: clear errors naming the file and the value', async (t) => {
  const truncated = cifarRecords(2, labels10(2), 10).subarray(0, 3073 * 2 - 100);
  const badLabel = cifarRecords(3, [[1], [10], [2]], 11);
  const badFine = cifarRecords(2, [[0, 0], [5, 100]], 12);
  const dir = t.testdir({
    truncated: { 'data_batch_1.bin': truncated },
    empty: { 'data_batch_1.bin': Buffer.alloc(0) },
    label: { 'data_batch_1.bin': badLabel },
    fine: { 'train.bin': badFine },
    nothing: { 'readme.txt': 'no data here' },
    names: { 'data_batch_1.bin': cifarRecords(1, labels10(1), 13), 'batches.meta.txt': 'one\ntwo\n' },
    'broken.tar.gz': Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]),
  });
  await t.rejects(readCifarBinary(path.join(dir, 'truncated')), {
    message: /data_batch_1\.bin: truncated or wrongly sized CIFAR binary file: 6046 bytes is not a positive multiple of the 3073-byte record/,
  });
  await t.rejects(readCifarBinary(path.join(dir, 'empty')), { message: /data_batch_1\.bin: truncated or wrongly sized.*0 bytes/ });
  await t.rejects(readCifarBinary(path.join(dir, 'label')), {
    message: /label[\\/]data_batch_1\.bin: label 10 out of range \[0, 10\) in record 1/,
  });
  await t.rejects(readCifarBinary(path.join(dir, 'fine')), { message: /train\.bin: label 100 out of range \[0, 100\) in record 1/ });
  await t.rejects(readCifarBinary(path.join(dir, 'nothing')), { message: /nothing: no CIFAR binary files found/ });
  await t.rejects(readCifarBinary(path.join(dir, 'names')), { message: /batches\.meta\.txt: expected 10 class names, found 2/ });
  await t.rejects(readCifarBinary(path.join(dir, 'missing')), { message: /cannot read .*missing: no such file or directory/ });
  await t.rejects(readCifarBinary(path.join(dir, 'broken.tar.gz')), { message: /broken\.tar\.gz: .*corrupt gzip data/ });
  await t.rejects(readCifarBinary(path.join(dir, 'fine'), { label: 'medium' as 'fine' }), { message: /'fine' or 'coarse', got 'medium'/ });
  fs.writeFileSync(path.join(dir, 'plain.tar'), Buffer.alloc(1024, 7));
  await t.rejects(readCifarBinary(path.join(dir, 'plain.tar')), { message: /plain\.tar: .*corrupt tar header at byte 0/ });
});
