import * as path from 'node:path';

/** The repository root, found from the compiled location (dist/src/util) or the source tree. */
export const repoRoot: string = (() => {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    if (path.basename(dir) === 'dist') return path.dirname(dir);
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..');
})();

export const fixturesDir = path.join(repoRoot, 'fixtures');
/** The demo data: a 6,000-image CIFAR-10 subset (image-folder format) shipped with the package. */
export const demoDataPath = path.join(fixturesDir, 'cifar10-subset');
/** The shared real CIFAR-10 image folder next to the checkout (benchmarks and real runs only). */
export const sharedCifar10Dir = path.join(repoRoot, '..', 'shared', 'datasets', 'cifar10');
