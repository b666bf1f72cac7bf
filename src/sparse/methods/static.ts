import type { SparseMethod } from '../method';
import { denseMethod } from './dense';

/** Static sparse training: the initial random mask is kept for the whole run. */
export function staticMethod(): SparseMethod {
  return { ...denseMethod(), name: 'static', sparse: true };
}
