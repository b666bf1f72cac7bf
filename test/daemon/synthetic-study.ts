import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveConfig, canonicalJson } from '../../src/config/config';
import { ArrowRunLog, writeReliabilityTable, type ReliabilityRow } from '../../src/sinks/arrow-log';
import { STAGES, writeSummary, type StageResult } from '../../src/sinks/summary';
import { Rng } from '../../src/util/rng';

/**
 * A study written straight into a runs folder, as finished sweep runs leave it (config.json, the
 * streamed metric and mask logs, reliability.arrow, summary.json), without training: for the
 * dashboard's scale tests. Every number is drawn from the run's seed and density, so the study is the
 * same on every call. Run ids are `<sweep>.<method>-d<density>-s<seed>`, as a queued sweep's.
 */
export interface SyntheticRun {
  readonly id: string;
  readonly method: string;
  readonly density: number;
  readonly seed: number;
}

export function syntheticGrid(sweep: string, methods: readonly string[], densities: readonly number[], seeds: number): SyntheticRun[] {
  return methods.flatMap((method) => densities.flatMap((density) => Array.from({ length: seeds }, (_, seed) => ({ id: `${sweep}.${method}-d${density}-s${seed}`, method, density, seed }))));
}

export function writeSyntheticRun(runsDir: string, run: SyntheticRun, options: { epochs?: number; stepsPerEpoch?: number; summary?: boolean } = {}): string {
  const epochs = options.epochs ?? 30;
  const stepsPerEpoch = options.stepsPerEpoch ?? 10;
  const dir = path.join(runsDir, run.id);
  fs.mkdirSync(dir, { recursive: true });
  const config = resolveConfig({ base: { sparse: { method: run.method, density: run.density }, seed: run.seed, train: { epochs }, output: { runName: run.id } } });
  fs.writeFileSync(path.join(dir, 'config.json'), canonicalJson(config) + '\n');
  const rng = new Rng(1000 * run.seed + Math.round(run.density * 1000) + run.method.length);
  const log = ArrowRunLog.open(dir, run.id, { flushIntervalMs: 60_000 });
  const sparsity = Math.log10(1 / run.density);
  const t0 = Date.UTC(2026, 0, 1);
  for (let step = 0; step < epochs * stepsPerEpoch; step++) {
    const epoch = Math.floor(step / stepsPerEpoch);
    const loss = 2.3 / (1 + 0.02 * step) + 0.05 * sparsity + 0.05 * rng.nextFloat();
    log.record({ type: 'step', step, epoch, loss, accuracy: Math.min(1, 0.1 + step / (epochs * stepsPerEpoch)), lr: 0.1, imagesPerSecond: 800, wallTimeMs: t0 + step });
    if (run.method !== 'dense' && step % 10 === 0) {
      log.record({
        type: 'maskUpdate', step, epoch, wallTimeMs: t0 + step,
        layers: ['conv1', 'conv2', 'fc'].map((layer) => ({ layer, pruned: 50 + rng.nextInt(20), grown: 50 + rng.nextInt(20), reselected: 0, density: run.density, dropFraction: 0.3, regrownPruned: rng.nextInt(5) })),
      });
    }
    if (step % stepsPerEpoch === stepsPerEpoch - 1) {
      log.record({ type: 'epochEnd', step, epoch, trainLoss: loss, trainAccuracy: 0.5, validationLoss: loss * 1.1, validationAccuracy: 0.5 + 0.01 * epoch, validationEce: 0.02 + 0.03 * sparsity + 0.01 * rng.nextFloat(), wallTimeMs: t0 + step });
    }
  }
  log.close({ final: options.summary !== false });
  if (options.summary === false) return dir;
  const accuracy = 0.92 - 0.05 * sparsity - 0.01 * rng.nextFloat();
  const ece = 0.03 + 0.04 * sparsity + 0.01 * rng.nextFloat();
  const result = (stage: string, shrink: number): StageResult => ({ stage, accuracy, ece: { '15': ece * shrink, '10': ece * shrink * 0.9 }, nll: 0.3 + ece * shrink, brier: 0.1 + ece * shrink / 2 });
  const bins: ReliabilityRow[] = [false, true].flatMap((calibrated) =>
    Array.from({ length: 15 }, (_, bin) => {
      const mid = (bin + 0.5) / 15;
      return { runId: run.id, split: 'test', stage: STAGES.averaged, calibrated, bins: 15, bin, lower: bin / 15, upper: (bin + 1) / 15, count: bin < 5 ? 0 : 100, confidence: bin < 5 ? null : mid, accuracy: bin < 5 ? null : Math.max(0, mid - (calibrated ? 0.01 : ece)) };
    }),
  );
  writeReliabilityTable(path.join(dir, 'reliability.arrow'), bins);
  writeSummary(path.join(dir, 'summary.json'), {
    runName: run.id,
    runDir: dir,
    configHash: 'synthetic',
    method: run.method,
    model: config.model.name,
    targetDensity: run.density,
    seed: run.seed,
    split: 'test',
    headline: STAGES.averaged,
    results: [result(STAGES.live, 1.2), result(STAGES.averaged, 1), { ...result(STAGES.temperatureScaled, 0.4), temperature: 1.5, scaled: STAGES.averaged }],
    layers: [],
    outputs: {},
    steps: epochs * stepsPerEpoch,
  });
  return dir;
}
