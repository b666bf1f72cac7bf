const { readImageFolder } = require('./dist/src/data/image-folder');
(async () => {
  for (const w of [0, 1, 2, 0, 1, 2]) {
    const t0 = Date.now();
    await readImageFolder('fixtures/cifar10-subset', { split: 'test', cacheDir: false, workers: w });
    console.log(w, '1000 imgs', Date.now() - t0);
  }
})();
