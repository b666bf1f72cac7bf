import * as tf from '@tensorflow/tfjs';
import type { Ops } from '../src/compute/ops';
import { stockOps } from '../src/compute/stock-ops';
import type { Model } from '../src/models/model';

/**
 * Multiply-add FLOPs (2 per MAC) of one image's forward pass through the convolutions and dense layers
 * (BatchNorm, ReLU and pooling are not counted), read off the shapes of an actual evaluation-mode pass
 * on one image. A training step costs about 3× this: the forward pass, the input gradient and the
 * weight gradient.
 */
export function forwardFlopsPerImage(model: Model): number {
  let flops = 0;
  const counting: Ops = {
    ...stockOps,
    name: 'flop-count',
    convBn(x, filter, bn, opts) {
      const y = stockOps.convBn(x, filter, bn, opts);
      const [kh, kw, cin] = filter.shape;
      flops += 2 * (y.size / y.shape[0]) * kh * kw * cin;
      return y;
    },
    dense(x, w, b, relu) {
      flops += 2 * w.shape[0] * w.shape[1];
      return stockOps.dense(x, w, b, relu);
    },
  };
  tf.tidy(() => model.apply(Object.fromEntries(model.params), tf.zeros([1, ...model.inputShape]), false, counting));
  return flops;
}
