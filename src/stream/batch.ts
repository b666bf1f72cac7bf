/** One training or evaluation batch as it travels from the augmentation workers to the training stage. */
export interface Batch {
  /** Epoch number, from 0. */
  readonly epoch: number;
  /** Position of this batch within its epoch, from 0; with `epoch` it identifies the batch. */
  readonly index: number;
  /** Number of images in this batch (the last batch of an epoch may be smaller unless dropped). */
  readonly size: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** size × height × width × channels normalised pixels, NHWC. */
  readonly x: Float32Array;
  /** size labels. */
  readonly labels: Int32Array;
}
