import { type Architecture, type ArchNode, convBn, dense } from './architecture';

/**
 * The model zoo. mlp, cnn and resnet20 match ../shared/peers/torch_peer.py layer for layer (NHWC here,
 * NCHW there; the arithmetic is the same) so that throughput comparisons are like for like.
 */
export const MODEL_NAMES = ['mlp', 'cnn', 'resnet20', 'wrn-16-4'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export interface ArchOptions {
  /** [height, width, channels] for conv nets (default CIFAR 32×32×3); mlp takes the flattened size. */
  readonly inputShape?: readonly number[];
  readonly numClasses?: number;
}

export function architecture(name: ModelName, opts: ArchOptions = {}): Architecture {
  const numClasses = opts.numClasses ?? 10;
  switch (name) {
    case 'mlp':
      // LeNet-300-100; image inputs are flattened first.
      return {
        name, numClasses, inputShape: opts.inputShape ?? [784],
        nodes: [{ op: 'flatten' }, dense('fc1', 300, true), dense('fc2', 100, true), dense('fc3', numClasses, false, false)],
      };
    case 'cnn':
      return {
        name, numClasses, inputShape: opts.inputShape ?? [32, 32, 3],
        nodes: [
          convBn('conv1', 32, 3), convBn('conv2', 32, 3), { op: 'maxPool2' },
          convBn('conv3', 64, 3), convBn('conv4', 64, 3), { op: 'maxPool2' },
          { op: 'flatten' }, dense('fc', numClasses, false, false),
        ],
      };
    case 'resnet20':
      return resnet(name, [16, 32, 64], 3, opts.inputShape ?? [32, 32, 3], numClasses);
    case 'wrn-16-4':
      // Wide ResNet depth 16, width 4 (2 blocks per stage, 64/128/256 channels), written with the same
      // post-activation basic blocks as resnet20 so that it runs on the same fused conv+BN+ReLU ops.
      return resnet(name, [64, 128, 256], 2, opts.inputShape ?? [32, 32, 3], numClasses, 16);
    default:
      throw new Error(`unknown model '${String(name)}'; expected one of ${MODEL_NAMES.join(', ')}`);
  }
}

function resnet(name: string, widths: readonly number[], blocksPerStage: number, inputShape: readonly number[], numClasses: number, stemWidth = widths[0]): Architecture {
  const nodes: ArchNode[] = [convBn('stem', stemWidth, 3)];
  let channels = stemWidth;
  widths.forEach((width, stage) => {
    for (let b = 0; b < blocksPerStage; b++) {
      const stride = b === 0 && stage > 0 ? 2 : 1;
      const prefix = `s${stage + 1}b${b + 1}`;
      const projection = stride !== 1 || channels !== width;
      nodes.push({
        op: 'residual', name: prefix,
        body: [convBn(`${prefix}.conv1`, width, 3, stride), convBn(`${prefix}.conv2`, width, 3, 1, false)],
        shortcut: projection ? [convBn(`${prefix}.shortcut`, width, 1, stride, false)] : [],
      });
      channels = width;
    }
  });
  nodes.push({ op: 'globalAvgPool' }, dense('fc', numClasses, false, false));
  return { name, inputShape, numClasses, nodes };
}
