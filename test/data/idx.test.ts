import * as path from 'node:path';
import * as zlib from 'node:zlib';
import t from 'tap';
import { parseIdx, readIdx, readIdxFolder } from '../../src/data/idx';
import { idxFile } from '../helpers/datasets';

const pixels = Uint8Array.from({ length: 3 * 4 * 5 }, (_, i) => (i * 7) % 256);
const imagesFile = idxFile([3, 4, 5], pixels);
const labelsFile = idxFile([3], [7, 0, 9]);

t.test('IDX images and labels, plain and gzipped, into a 1-channel data set', async (t) => {
  const dir = t.testdir({
    'train-images-idx3-ubyte': imagesFile,
    'train-labels-idx1-ubyte': labelsFile,
    't10k-images-idx3-ubyte.gz': zlib.gzipSync(idxFile([1, 4, 5], pixels.subarray(0, 20))),
    't10k-labels-idx1-ubyte.gz': zlib.gzipSync(idxFile([1], [4])),
  });
  const { train, test } = await readIdxFolder(dir);
  t.same([train.count, train.height, train.width, train.channels], [3, 4, 5, 1]);
  t.same(Buffer.from(train.images), Buffer.from(pixels));
  t.same(Array.from(train.labels), [7, 0, 9]);
  t.same(train.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  t.same([test!.count, test!.labels[0]], [1, 4]);
  t.same(Buffer.from(test!.images), Buffer.from(pixels.subarray(0, 20)));
  const named = await readIdx(path.join(dir, 'train-images-idx3-ubyte'), path.join(dir, 'train-labels-idx1-ubyte'), {
    classNames: 'abcdefghij'.split(''),
  });
  t.equal(named.classNames[named.labels[0]], 'h');
});

t.test('parseIdx reads dims and data; 4-d images carry channels', async (t) => {
  const a = parseIdx(idxFile([2, 1, 1, 3], [1, 2, 3, 4, 5, 6]), 'x');
  t.same(a.dims, [2, 1, 1, 3]);
  t.same(Array.from(a.data), [1, 2, 3, 4, 5, 6]);
  const dir = t.testdir({ i: idxFile([2, 1, 1, 3], [1, 2, 3, 4, 5, 6]), l: idxFile([2], [1, 1]) });
  const ds = await readIdx(path.join(dir, 'i'), path.join(dir, 'l'));
  t.same([ds.count, ds.height, ds.width, ds.channels], [2, 1, 1, 3]);
});

t.test('bad IDX input: magic, type, shape, count, label range, missing files', async (t) => {
  const badMagic = Buffer.from(imagesFile);
  badMagic[0] = 0x12;
  const dir = t.testdir({
    magic: badMagic,
    float: idxFile([3], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0x0d),
    short: imagesFile.subarray(0, imagesFile.length - 1),
    images: imagesFile,
    labels2d: idxFile([3, 1], [1, 2, 3]),
    labels4: idxFile([4], [1, 2, 3, 4]),
    labelsBad: idxFile([3], [1, 12, 3]),
    labels: labelsFile,
    tiny: Buffer.from([0, 0]),
    empty: {},
  });
  const f = (name: string) => path.join(dir, name);
  await t.rejects(readIdx(f('magic'), f('labels')), { message: /magic: bad IDX magic 0x12000803/ });
  await t.rejects(readIdx(f('float'), f('labels')), { message: /float: IDX magic 0x00000d01 has data type 0xd; only unsigned byte/ });
  await t.rejects(readIdx(f('short'), f('labels')), { message: /short: IDX shape \[3, 4, 5\] needs 60 data bytes, the file has 59/ });
  await t.rejects(readIdx(f('labels'), f('labels')), { message: /labels: IDX images must have shape \[N, H, W\] or \[N, H, W, C\], got \[3\]/ });
  await t.rejects(readIdx(f('images'), f('labels2d')), { message: /labels2d: IDX labels must have shape \[N\], got \[3, 1\]/ });
  await t.rejects(readIdx(f('images'), f('labels4')), { message: /labels4: 4 labels, but .*images holds 3 images/ });
  await t.rejects(readIdx(f('images'), f('labelsBad')), { message: /labelsBad: label 12 out of range \[0, 10\) at index 1/ });
  await t.rejects(readIdx(f('tiny'), f('labels')), { message: /tiny: not an IDX file: only 2 bytes/ });
  await t.rejects(readIdx(f('nope'), f('labels')), { message: /cannot read .*nope: no such file or directory/ });
  await t.rejects(readIdxFolder(f('empty')), { message: /empty: missing IDX file train-images-idx3-ubyte \(or train-images-idx3-ubyte\.gz\)/ });
  await t.rejects(readIdxFolder(f('absent')), { message: /cannot read .*absent: not a folder of IDX files/ });
});
