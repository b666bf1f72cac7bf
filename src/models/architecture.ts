/**
 * Models are described as a small tree of nodes. One description gives the parameters (build.ts), the
 * training forward pass over Ops (build.ts) and the equivalent standard tfjs Layers model for export
 * (export-layers.ts), so the three can never disagree.
 */
export type ArchNode =
  /** conv2d (no bias, HWIO filter, TF 'same' padding) → BatchNorm → optional ReLU. */
  | { readonly op: 'convBn'; readonly name: string; readonly filters: number; readonly kernel: number; readonly stride: number; readonly relu: boolean }
  | { readonly op: 'maxPool2' }
  | { readonly op: 'flatten' }
  | { readonly op: 'globalAvgPool' }
  /** x·W + b; `maskable: false` for the classifier, which sparse methods mask only when asked to. */
  | { readonly op: 'dense'; readonly name: string; readonly units: number; readonly relu: boolean; readonly maskable: boolean }
  /** relu(body(x) + shortcut(x)); an empty shortcut is the identity. */
  | { readonly op: 'residual'; readonly name: string; readonly body: readonly ArchNode[]; readonly shortcut: readonly ArchNode[] };

export interface Architecture {
  readonly name: string;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly nodes: readonly ArchNode[];
}

export const convBn = (name: string, filters: number, kernel: number, stride = 1, relu = true): ArchNode => ({
  op: 'convBn', name, filters, kernel, stride, relu,
});

export const dense = (name: string, units: number, relu: boolean, maskable = true): ArchNode => ({
  op: 'dense', name, units, relu, maskable,
});
