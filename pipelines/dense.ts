import type { Pipeline } from '../src/pipeline/run-job';
import { rigl } from './rigl';

/** The dense baseline: every weight trained, same stages as RigL (no mask ever changes). */
export const dense: Pipeline = {
  ...rigl,
  name: 'dense',
  description: 'Dense baseline: all weights, the final weights, then calibration',
  defaults: { sparse: { method: 'dense' }, average: { enabled: false } },
};
