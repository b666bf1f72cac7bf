import * as path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { detectFormat, loadDataset, type DatasetSpec } from '../../src/data/load';
import { cifarRecords, idxFile } from '../helpers/datasets';

t.test('loadDataset picks the reader from the spec; detectFormat guesses it from the path', async (t) => {
  const png = await sharp(Buffer.alloc(2 * 2 * 3, 40), { raw: { width: 2, height: 2, channels: 3 } }).png().toBuffer();
  const root = t.testdir({
    cifar: { 'data_batch_1.bin': cifarRecords(2, [[3], [4]], 1) },
    cifar100: { 'cifar-100-binary': { 'train.bin': cifarRecords(1, [[2, 50]], 2) } },
    folder: { train: { cat: { '1.png': png }, dog: { '2.png': png } }, test: { dog: { '3.png': png } } },
    mnist: { 'train-images-idx3-ubyte': idxFile([2, 1, 2], [1, 2, 3, 4]), 'train-labels-idx1-ubyte': idxFile([2], [9, 8]) },
    unknown: { 'a.csv': 'x' },
  });
  const at = (p: string) => path.join(root, p);
  const cifar = await loadDataset({ format: 'cifar-binary', path: at('cifar') });
  t.same(Array.from(cifar.train.labels), [3, 4]);
  const coarse = await loadDataset({ format: 'cifar-binary', path: at('cifar100'), label: 'coarse' });
  t.same(Array.from(coarse.train.labels), [2]);
  const folder = await loadDataset({ format: 'image-folder', path: at('folder'), cacheDir: false });
  t.same(folder.train.classNames, ['cat', 'dog']);
  t.same(Array.from(folder.test!.labels), [1]);
  const mnist = await loadDataset({ format: 'idx', path: at('mnist') });
  t.same([mnist.train.count, mnist.train.channels, mnist.train.labels[0]], [2, 1, 9]);

  const auto = await loadDataset({ format: 'auto', path: at('folder'), cacheDir: false });
  t.same(Buffer.from(auto.train.images), Buffer.from(folder.train.images), 'auto: the image folder reader');
  const autoCoarse = await loadDataset({ format: 'auto', path: at('cifar100'), label: 'coarse' });
  t.same(Array.from(autoCoarse.train.labels), [2], 'auto: reader options pass through');
  t.equal(detectFormat(at('cifar')), 'cifar-binary');
  t.equal(detectFormat(at('cifar100')), 'cifar-binary');
  t.equal(detectFormat(at('folder')), 'image-folder');
  t.equal(detectFormat(at('mnist')), 'idx');
  t.throws(() => detectFormat(at('unknown')), { message: /unknown: cannot tell the data set format/ });
  t.throws(() => detectFormat(at('absent')), { message: /cannot read .*absent: no such file or directory/ });
  await t.rejects(loadDataset({ format: 'csv', path: at('unknown') } as unknown as DatasetSpec), {
    message: /unknown data set format 'csv' \(known: auto, cifar-binary, image-folder, idx\)/,
  });
});
