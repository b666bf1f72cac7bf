import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../../src/util/paths';
import { cifarRecords } from './datasets';

/** The compiled CLI entry, for tests that run `cigl` as users do (as a child process). */
export const ciglBin = path.join(repoRoot, 'bin', 'cigl.js');

/**
 * A throw-away workspace with a tiny CIFAR-10-format data set (seeded random pixels, 10 classes) and a
 * config that trains the mlp on it in seconds on any backend: CigL with frequent mask updates,
 * snapshots from epoch 2, a checkpoint after every step.
 */
export function tinyRunWorkspace(options: { train?: number; test?: number; config?: Record<string, unknown> } = {}): { dir: string; config: string; runsDir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-run-'));
  const data = path.join(dir, 'data');
  fs.mkdirSync(data);
  const trainCount = options.train ?? 160;
  const testCount = options.test ?? 40;
  const labels = (n: number, offset: number) => Array.from({ length: n }, (_, i) => [(i * 7 + offset) % 10]);
  fs.writeFileSync(path.join(data, 'data_batch_1.bin'), cifarRecords(trainCount, labels(trainCount, 0), 11));
  fs.writeFileSync(path.join(data, 'test_batch.bin'), cifarRecords(testCount, labels(testCount, 3), 12));
  const runsDir = path.join(dir, 'runs');
  const config = {
    seed: 3,
    data: { format: 'cifar-binary', path: data, batchSize: 32, workers: 1, validationFraction: 0.2 },
    model: { name: 'mlp' },
    sparse: { method: 'cigl', density: 0.2, updateInterval: 2, randomMaskRate: 0.1 },
    optimiser: { lr: 0.05 },
    train: { epochs: 4, backend: 'cpu', checkpointEverySteps: 1, checkpointEveryMinutes: 0, checkpointEveryEpochs: 0 },
    average: { startEpoch: 2 },
    output: { runsDir },
    ...options.config,
  };
  const configFile = path.join(dir, 'config.json');
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  return { dir, config: configFile, runsDir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Steps completed by the newest committed checkpoint of a run, or -1. */
export function latestCheckpointStep(runDir: string): number {
  try {
    const name = fs.readFileSync(path.join(runDir, 'checkpoints', 'latest'), 'utf8').trim();
    return Number(name.replace('step-', ''));
  } catch {
    return -1;
  }
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 120_000, everyMs = 20): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
