import type { ArchNode, Architecture } from '../src/models/architecture';

/**
 * Multiply-add FLOPs (2 per MAC) of one image's forward pass through the convolutions and dense layers
 * (BatchNorm, ReLU and pooling are not counted). A training step costs about 3× this: the forward pass,
 * the input gradient and the weight gradient.
 */
export function forwardFlopsPerImage(arch: Architecture): number {
  let flops = 0;
  const walk = (nodes: readonly ArchNode[], shape: readonly number[]): readonly number[] => nodes.reduce(visit, shape);
  const visit = (shape: readonly number[], node: ArchNode): readonly number[] => {
    switch (node.op) {
      case 'convBn': {
        const [h, w, c] = shape;
        const [oh, ow] = [Math.ceil(h / node.stride), Math.ceil(w / node.stride)];
        flops += 2 * oh * ow * node.kernel * node.kernel * c * node.filters;
        return [oh, ow, node.filters];
      }
      case 'maxPool2':
        return [Math.floor(shape[0] / 2), Math.floor(shape[1] / 2), shape[2]];
      case 'flatten':
        return [shape.reduce((a, b) => a * b, 1)];
      case 'globalAvgPool':
        return [shape[2]];
      case 'dense':
        flops += 2 * shape[0] * node.units;
        return [node.units];
      case 'residual': {
        const out = walk(node.body, shape);
        walk(node.shortcut, shape);
        return out;
      }
    }
  };
  walk(arch.nodes, arch.inputShape);
  return flops;
}
