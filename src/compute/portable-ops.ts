import * as tf from '@tensorflow/tfjs';
import type { Ops } from './ops';
import { batchNorm, stockOps } from './stock-ops';

/**
 * stockOps with the convolution gradient rewritten in plain conv2d calls, for the stock fallbacks
 * (wasm, cpu) when neither tfjs-node nor the native addon is available. Measured in
 * ../shared/docs/cpu-compute-notes.md: wasm has no Conv2DBackpropFilter at all, and on the cpu backend
 * the built-in one took 42 of 45 s of a step.
 *  - A: ∂L/∂W is a convolution of the (padded) input with ∂L/∂y, batch and channels swapped, with
 *    the forward stride as dilation.
 *  - B: for stride 1, ∂L/∂x is a convolution of ∂L/∂y with the flipped, transposed filter.
 * Numerically these are the same sums in another order (tested against tf.conv2d's own gradient).
 */
export const portableOps: Ops = {
  ...stockOps,
  name: 'stock-portable',

  convBn(x, filter, bn, opts) {
    const y = batchNorm(conv2dPortableGrad(x, filter, opts.stride, opts.padding), bn, opts);
    return opts.relu ? (tf.relu(y) as tf.Tensor4D) : y;
  },
};

/** tf.conv2d (NHWC, HWIO) whose gradient uses only forward convolutions (workarounds A and B). */
export function conv2dPortableGrad(x: tf.Tensor4D, filter: tf.Tensor4D, stride: number, padding: 'same' | 'valid'): tf.Tensor4D {
  const conv = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([input, w]);
    return {
      value: tf.conv2d(input, w, stride, padding),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        const info = tf.backend_util.computeConv2DInfo(xs.shape, ws.shape, stride, 1, padding);
        return [inputGradient(dy as tf.Tensor4D, ws, xs.shape, info, padding), filterGradient(dy as tf.Tensor4D, xs, info)];
      },
    };
  });
  return conv(x, filter) as tf.Tensor4D;
}

/** Workaround A. */
function filterGradient(dy: tf.Tensor4D, x: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { top, bottom, left, right } = info.padInfo;
  // The rows and columns the forward pass actually read (a strided 'valid' conv may skip the last ones).
  const usedHeight = (info.outHeight - 1) * info.strideHeight + info.filterHeight;
  const usedWidth = (info.outWidth - 1) * info.strideWidth + info.filterWidth;
  const padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
  const used = tf.slice(padded, [0, 0, 0, 0], [-1, usedHeight, usedWidth, -1]);
  const dw = tf.conv2d(tf.transpose(used, [3, 1, 2, 0]) as tf.Tensor4D, tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid', 'NHWC',
    [info.strideHeight, info.strideWidth]);
  return tf.transpose(dw, [1, 2, 0, 3]) as tf.Tensor4D;
}

/** Workaround B for stride 1 (full correlation with the flipped filter); tfjs's own kernel otherwise. */
function inputGradient(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: [number, number, number, number], info: tf.backend_util.Conv2DInfo,
  padding: 'same' | 'valid'): tf.Tensor4D {
  if (info.strideHeight !== 1 || info.strideWidth !== 1) {
    return tf.conv2dTranspose(dy, w, xShape, [info.strideHeight, info.strideWidth], padding);
  }
  const { top, bottom, left, right } = info.padInfo;
  const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
  const kh = info.filterHeight - 1;
  const kw = info.filterWidth - 1;
  return tf.conv2d(dy, flipped, 1, [[0, 0], [kh - top, kh - bottom], [kw - left, kw - right], [0, 0]]);
}
