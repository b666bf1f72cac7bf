import sharp from 'sharp';

/** Work for one decode worker: files to decode into `pixels` (shared memory) from image `first` on. */
export interface DecodeTask {
  readonly files: readonly string[];
  /** Index of `files[0]` in the whole data set, so results land in place. */
  readonly first: number;
  /** The whole data set's pixels, backed by a SharedArrayBuffer (written in place, never copied). */
  readonly pixels: Uint8Array;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  /** The image whose size every other must have (named in size errors). */
  readonly referenceFile: string;
}

export interface DecodedImage {
  readonly data: Buffer;
  readonly height: number;
  readonly width: number;
}

/** Decodes one image file to raw 8-bit pixels: RGB (alpha dropped, grey expanded) or single-channel. */
export async function decodeImage(file: string, channels: 1 | 3): Promise<DecodedImage> {
  try {
    const { data, info } = await sharp(file, { failOn: 'warning' })
      .removeAlpha()
      .toColourspace(channels === 1 ? 'b-w' : 'srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) throw new Error(`decoded to ${info.channels} channels, expected ${channels}`);
    return { data, height: info.height, width: info.width };
  } catch (err) {
    throw new Error(`${file}: not a readable image (${(err as Error).message})`);
  }
}

/** Decodes a task's files into its slice of the shared pixel buffer; every image must match the size. */
export async function decodeInto(task: DecodeTask): Promise<void> {
  const imageBytes = task.height * task.width * task.channels;
  for (let i = 0; i < task.files.length; i++) {
    const file = task.files[i];
    const image = await decodeImage(file, task.channels);
    if (image.height !== task.height || image.width !== task.width) {
      throw new Error(
        `${file}: image is ${image.width}×${image.height}, but the first image ${task.referenceFile} is ` +
          `${task.width}×${task.height}; all images must have the same size`,
      );
    }
    task.pixels.set(image.data, (task.first + i) * imageBytes);
  }
}
