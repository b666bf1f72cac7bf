// Piscina worker: decodes a chunk of image files into the shared pixel buffer (see src/data/image-decode).
import sharp from 'sharp';
import { decodeInto, type DecodeTask } from '../src/data/image-decode';

// Parallelism comes from the worker threads; libvips' own thread pool would only oversubscribe the cores.
sharp.concurrency(1);
sharp.cache(false);

export default async function decodeImages(task: DecodeTask): Promise<void> {
  await decodeInto(task);
}
