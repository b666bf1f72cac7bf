import * as path from 'node:path';

/** The compiled worker entry `workers/<name>.js`, found from this module's place in dist/src/util. */
export function workerPath(name: string): string {
  return path.resolve(__dirname, '..', '..', 'workers', `${name}.js`);
}
