import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import { CIFAR10_CLASSES } from '../../src/data/class-names';
import { readImageFolder, readImageFolderSplits } from '../../src/data/image-folder';
import { isShared } from '../../src/data/shared-memory';
import { fixturesDir } from '../../src/util/paths';
import { Rng } from '../../src/util/rng';

/** A lossless PNG of seeded random RGB pixels, and those pixels. */
async function png(seed: number, width = 6, height = 4, channels: 3 | 4 = 3): Promise<{ file: Buffer; rgb: Buffer }> {
  const rng = new Rng(seed);
  const raw = Buffer.alloc(width * height * channels);
  for (let i = 0; i < raw.length; i++) raw[i] = channels === 4 && i % 4 === 3 ? 255 : rng.nextInt(256);
  const file = await sharp(raw, { raw: { width, height, channels } }).png().toBuffer();
  const rgb = Buffer.alloc(width * height * 3);
  for (let p = 0; p < width * height; p++) for (let c = 0; c < 3; c++) rgb[p * 3 + c] = raw[p * channels + c];
  return { file, rgb };
}

t.test('reads SPLIT/CLASS/* sorted, decodes pixels exactly, caches once and reuses the cache', async (t) => {
  const imgs = await Promise.all([1, 2, 3, 4].map((s) => png(s)));
  const rgba = await png(5, 6, 4, 4);
  const root = t.testdir({
    data: {
      train: {
        zebra: { 'b.png': imgs[0].file, 'a.PNG': imgs[1].file, '.DS_Store': 'junk' },
        ant: { 'x.png': imgs[2].file, 'y.png': rgba.file },
      },
      test: { zebra: { 'c.png': imgs[3].file } },
    },
    cache: {},
  });
  const dataRoot = path.join(root, 'data');
  const cacheDir = path.join(root, 'cache');
  const { train, test } = await readImageFolderSplits(dataRoot, { cacheDir, workers: 2 });
  t.same(train.classNames, ['ant', 'zebra'], 'class order: sorted folder names');
  t.same(Array.from(train.labels), [0, 0, 1, 1]);
  t.same([train.count, train.height, train.width, train.channels], [4, 4, 6, 3]);
  t.ok(isShared(train.images));
  const expected = Buffer.concat([imgs[2].rgb, rgba.rgb, imgs[1].rgb, imgs[0].rgb]);
  t.same(Buffer.from(train.images), expected, 'pixels in order ant/x, ant/y (alpha dropped), zebra/a, zebra/b');
  t.same(test!.classNames, ['ant', 'zebra'], 'test uses the training classes');
  t.same(Array.from(test!.labels), [1]);
  t.same(Buffer.from(test!.images), imgs[3].rgb);

  const cacheFiles = fs.readdirSync(cacheDir);
  t.equal(cacheFiles.length, 2, 'one packed cache file per split');
  t.same(fs.readdirSync(path.join(dataRoot, 'train')).sort(), ['ant', 'zebra'], 'nothing written into the source');

  // Prove the second read comes from the cache: alter a pixel inside the cache file only.
  const trainCache = cacheFiles.map((f) => path.join(cacheDir, f)).find((f) => fs.statSync(f).size > 100 && fs.readFileSync(f).includes('"count":4'))!;
  const bytes = fs.readFileSync(trainCache);
  bytes[bytes.length - 1] ^= 0xff;
  fs.writeFileSync(trainCache, bytes);
  const again = await readImageFolder(dataRoot, { split: 'train', cacheDir });
  t.equal(again.images[again.images.length - 1], expected[expected.length - 1] ^ 0xff, 'reloaded from the cache');
  t.same(Array.from(again.labels), [0, 0, 1, 1]);

  // A changed source (new mtime and size) invalidates the cache: decoded afresh.
  fs.writeFileSync(path.join(dataRoot, 'train', 'zebra', 'b.png'), (await png(9)).file);
  const changed = await readImageFolder(dataRoot, { split: 'train', cacheDir });
  t.same(Buffer.from(changed.images.subarray(3 * 72)), (await png(9)).rgb, 'the changed image');
  t.equal(changed.images[2 * 72], expected[2 * 72], 'no stale cached pixels');

  const noCache = await readImageFolder(dataRoot, { split: 'train', cacheDir: false, workers: 1 });
  t.same(Buffer.from(noCache.images), Buffer.from(changed.images));
});

t.test('greyscale reading and JPEG decoding', async (t) => {
  const grey = await sharp(Buffer.alloc(4 * 4, 77), { raw: { width: 4, height: 4, channels: 1 } }).jpeg().toBuffer();
  const root = t.testdir({ train: { only: { 'g.jpg': grey, 'h.jpeg': grey } } });
  const rgb = await readImageFolder(root, { split: 'train', cacheDir: false });
  t.equal(rgb.channels, 3);
  t.same(Array.from(new Set(rgb.images)), [77], 'grey expanded to RGB');
  const one = await readImageFolder(root, { split: 'train', cacheDir: false, channels: 1 });
  t.same([one.channels, one.images.length], [1, 32]);
});

t.test('the CIFAR-10 subset fixture: sorted folder names are the official label order', async (t) => {
  const root = path.join(fixturesDir, 'cifar10-subset');
  t.same(fs.readdirSync(path.join(root, 'train')).sort(), CIFAR10_CLASSES);
  const cacheDir = t.testdir();
  const test = await readImageFolder(root, { split: 'test', cacheDir });
  t.same(test.classNames, CIFAR10_CLASSES);
  t.same([test.count, test.height, test.width, test.channels], [1000, 32, 32, 3]);
  const perClass = new Array(10).fill(0);
  for (const l of test.labels) perClass[l]++;
  t.same(perClass, new Array(10).fill(100));
  const catFile = path.join(root, 'test', 'cat', fs.readdirSync(path.join(root, 'test', 'cat')).sort()[0]);
  const direct = await sharp(catFile).raw().toBuffer();
  const at = 300 * 3072; // cat is class 3: images 300..399
  t.same(Buffer.from(test.images.subarray(at, at + 3072)), direct, 'first cat image decoded as sharp does');
});

t.test('bad image folders: clear errors naming the file', async (t) => {
  const ok = (await png(1)).file;
  const other = (await png(2, 5, 4)).file;
  const root = t.testdir({
    notImage: { train: { a: { '1.png': ok, 'notes.txt': 'hello' } } },
    corrupt: { train: { a: { '1.png': ok, '2.jpg': Buffer.from('not really a jpeg') } } },
    truncated: { train: { a: { '1.png': ok, '2.png': ok.subarray(0, ok.length - 30) } } },
    size: { train: { a: { '1.png': ok }, b: { '2.png': other } } },
    stray: { train: { a: { '1.png': ok }, 'file.png': ok } },
    empty: { train: { a: {} } },
    good: { train: { a: { '1.png': ok } } },
    testExtra: { train: { a: { '1.png': ok } }, test: { a: { '1.png': ok }, zz: { '2.png': ok } } },
  });
  const read = (name: string, split = 'train') => readImageFolder(path.join(root, name), { split, cacheDir: false });
  await t.rejects(read('notImage'), { message: /notes\.txt: not an image file \(expected \.jpg, \.jpeg, \.png\)/ });
  await t.rejects(read('corrupt'), { message: /2\.jpg: not a readable image \(.*unsupported image format/ });
  await t.rejects(read('truncated'), { message: /2\.png: not a readable image/ });
  await t.rejects(readImageFolder(path.join(root, 'corrupt'), { split: 'train', cacheDir: false, workers: 2 }), {
    message: /2\.jpg: not a readable image/,
  }, 'the same error through the decode worker threads');
  await t.rejects(readImageFolder(path.join(root, 'size'), { split: 'train', cacheDir: false, workers: 1 }), {
    message: /2\.png: image is 5×4/,
  });
  await t.rejects(read('size'), { message: /b[\\/]2\.png: image is 5×4, but the first image .*1\.png is 6×4/ });
  await t.rejects(read('stray'), { message: /file\.png: unexpected file in a split folder/ });
  await t.rejects(read('empty'), { message: /empty[\\/]train: no images/ });
  await t.rejects(read('notImage', 'val'), { message: /missing split folder .*notImage[\\/]val/ });
  await t.rejects(readImageFolderSplits(path.join(root, 'good'), { testSplit: 'holdout', cacheDir: false }), {
    message: /missing split folder .*holdout/,
  });
  await t.rejects(readImageFolderSplits(path.join(root, 'testExtra'), { cacheDir: false }), {
    message: /zz: class 'zz' is not among the classes \[a\]/,
  });
  await t.rejects(readImageFolderSplits(path.join(root, 'nowhere')), { message: /cannot read .*nowhere: no such file or directory/ });
  const { test } = await readImageFolderSplits(path.join(root, 'good'), { cacheDir: false });
  t.equal(test, undefined, 'no test folder at the default name: no test split');
});
