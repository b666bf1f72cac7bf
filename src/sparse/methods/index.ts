import { type SparseMethod, type SparseMethodName, SPARSE_METHOD_NAMES } from '../method';
import { ciglMethod } from './cigl';
import { denseMethod } from './dense';
import { riglMethod } from './rigl';
import { setMethod } from './set';
import { staticMethod } from './static';

export { ciglMethod, CIGL_DEFAULT_RANDOM_MASK_RATE } from './cigl';
export { denseMethod } from './dense';
export { riglMethod } from './rigl';
export { setMethod } from './set';
export { staticMethod } from './static';

/** The method registry; `randomMaskRate` is CigL's p (ignored by the other methods). */
export function createSparseMethod(name: SparseMethodName, opts: { readonly randomMaskRate?: number } = {}): SparseMethod {
  switch (name) {
    case 'dense':
      return denseMethod();
    case 'static':
      return staticMethod();
    case 'set':
      return setMethod();
    case 'rigl':
      return riglMethod();
    case 'cigl':
      return ciglMethod(opts.randomMaskRate);
    default:
      throw new Error(`sparsity.method must be one of ${SPARSE_METHOD_NAMES.join(', ')}, got '${String(name)}'`);
  }
}
