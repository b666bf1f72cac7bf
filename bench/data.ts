/**
 * Data pipeline benchmark (`npm run bench:data`): the one-time decode of the real CIFAR-10 image folder
 * into the packed cache, the cached reload, and augmented images per second through the real batch
 * stream with 1 and 2 worker threads (batch 128, pad 4 + crop + flip + normalise), plus the pure
 * augmentation function on one thread for reference. Target: ≥ 50,000 augmented images/s on 2 cores.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lastValueFrom, take, tap } from 'rxjs';
import { augmentBatch } from '../src/augment/augment';
import { AugmentPool } from '../src/augment/pool';
import { readImageFolder } from '../src/data/image-folder';
import { channelStats } from '../src/data/split';
import type { ChannelStats, ImageDataset } from '../src/data/types';
import { batchStream } from '../src/stream/batch-stream';
import { sharedCifar10Dir } from '../src/util/paths';
import { Rng } from '../src/util/rng';

const BATCH = 128;

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

/** Images per second through batchStream on a started pool (thread start-up is not part of the rate). */
async function timeStream(train: ImageDataset, stats: ChannelStats, workers: number, epochs: number): Promise<number> {
  const pool = new AugmentPool(train, { workers });
  try {
    const options = { dataset: train, stats, batchSize: BATCH, pool, prefetch: 2 * workers + 2 };
    // Warm-up: threads started and the loops compiled before timing.
    await lastValueFrom(batchStream({ ...options, seed: 1, epochs: 1 }).pipe(take(40)));
    let images = 0;
    const start = process.hrtime.bigint();
    await lastValueFrom(batchStream({ ...options, seed: 2, epochs }).pipe(tap((b) => (images += b.size))));
    return images / seconds(start);
  } finally {
    await pool.destroy();
  }
}

async function main(): Promise<void> {
  const root = process.argv[2] ?? sharedCifar10Dir;
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-bench-cache-'));
  try {
    console.log(`data: ${root}/train   cores: ${os.availableParallelism()}   node ${process.version}`);
    let t = process.hrtime.bigint();
    const train = await readImageFolder(root, { split: 'train', cacheDir, workers: 2 });
    const decodeS = seconds(t);
    console.log(`decode image folder (sharp, 2 threads) -> cache: ${train.count} images in ${decodeS.toFixed(1)} s (${Math.round(train.count / decodeS)} images/s)`);
    t = process.hrtime.bigint();
    await readImageFolder(root, { split: 'train', cacheDir });
    console.log(`reload from the packed cache: ${(seconds(t) * 1000).toFixed(0)} ms`);
    t = process.hrtime.bigint();
    const stats = channelStats(train);
    console.log(`channel stats: ${(seconds(t) * 1000).toFixed(0)} ms  mean ${stats.mean.map((m) => m.toFixed(4))} std ${stats.std.map((s) => s.toFixed(4))}`);

    const rng = new Rng(1);
    const indices = Int32Array.from({ length: BATCH }, (_, i) => i * 37);
    const out = new Float32Array(BATCH * 32 * 32 * 3);
    for (let i = 0; i < 50; i++) augmentBatch(train, indices, stats, rng, undefined, out);
    const reps = 400;
    t = process.hrtime.bigint();
    for (let i = 0; i < reps; i++) augmentBatch(train, indices, stats, rng, undefined, out);
    const perBatch = seconds(t) / reps;
    console.log(`augmentBatch alone, main thread: ${(perBatch * 1000).toFixed(3)} ms per ${BATCH} images (${Math.round(BATCH / perBatch)} images/s)`);

    const epochs = 2;
    for (const workers of [1, 2]) {
      const rate = await timeStream(train, stats, workers, epochs);
      console.log(`batchStream, ${workers} worker${workers > 1 ? 's' : ''}: ${Math.round(rate)} augmented images/s (${epochs} epochs of ${train.count}, batch ${BATCH})`);
    }
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
