import * as tf from '@tensorflow/tfjs';
import type { Ops } from './ops';
import { stockOps } from './stock-ops';

export type BackendPreference = 'auto' | 'tensorflow' | 'native' | 'wasm' | 'cpu';

export interface SelectedBackend {
  readonly backend: string;
  readonly ops: Ops;
  readonly description: string;
}

/** Picks the compute path (interim: tfjs-node when installed, else the tfjs cpu backend). */
export async function selectBackend(preference: BackendPreference): Promise<SelectedBackend> {
  if (preference === 'auto' || preference === 'tensorflow') {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      try {
        require(pkg);
        await tf.setBackend('tensorflow');
        return { backend: 'tensorflow', ops: stockOps, description: `${pkg} (libtensorflow)` };
      } catch {
        // not installed here: try the next
      }
    }
    if (preference === 'tensorflow') throw new Error('train.backend tensorflow: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node is installed');
  }
  await tf.setBackend('cpu');
  return { backend: 'cpu', ops: stockOps, description: 'tfjs cpu backend, stock kernels' };
}
