import t from 'tap';
import type { EpochEndEvent, MaskUpdateEvent, TrainEvent } from '../../src/train/events';
import { Trainer } from '../../src/train/trainer';
import { cifarAvailable, loadCifarSubset, subsetBatches } from '../helpers/cifar-subset';
import { tinyConfig, tinyConvModel, useCpuBackend } from '../helpers/tiny-training';

/**
 * A short real run: 256 CIFAR-10 training images at 16×16, a small conv net on the tfjs 'cpu' backend,
 * RigL and CigL at 80% sparsity with ERK, mask updates every 4 steps. Logs every mask update (t.comment)
 * and checks that per-layer densities never drift and that the training loss goes down.
 */
t.before(useCpuBackend);

const skip = cifarAvailable() ? false : 'the shared CIFAR-10 folder (../shared/datasets/cifar10) is not present';

t.test('short real RigL and CigL runs on a CIFAR-10 subset', { skip }, async (t) => {
  const subset = await loadCifarSubset(26, 16, 0);
  t.equal(subset.count, 260);
  const epochs = 3;
  const batches = subsetBatches(subset, 32, epochs);
  const stepsPerEpoch = batches.length / epochs;
  for (const method of ['rigl', 'cigl'] as const) {
    const model = tinyConvModel(0, [16, 16, 3], 10, 4);
    const trainer = new Trainer(tinyConfig(model, {
      epochs, stepsPerEpoch, seed: 0,
      sparsity: { method, density: 0.2, distribution: 'erk', updateEvery: 4, randomMaskRate: 0.1 },
      lr: { kind: 'constant', baseLr: 0.05 },
    }));
    t.comment(`${method}: layers ${trainer.layers.map((l) => `${l.name} ${l.active}/${l.size} (${l.density.toFixed(4)})`).join(', ')}`);
    const events: TrainEvent[] = [];
    for (const batch of batches) events.push(...(await trainer.process(batch)));
    const updates = events.filter((e): e is MaskUpdateEvent => e.type === 'maskUpdate');
    for (const u of updates) {
      t.comment(`${method} step ${u.step}: ${u.layers.map((l) => `${l.layer} density ${l.density.toFixed(4)} f ${l.dropFraction.toFixed(3)} −${l.pruned}/+${l.grown} regrownPruned ${l.regrownPruned}`).join('; ')}`);
      for (const l of u.layers) {
        const allocation = trainer.layers.find((a) => a.name === l.layer)!;
        if (l.density !== allocation.density) t.fail(`${method} step ${u.step} ${l.layer}: density ${l.density} drifted from ${allocation.density}`);
      }
    }
    t.ok(updates.length >= 3 && updates.some((u) => u.layers.some((l) => l.grown > 0)), `${method}: ${updates.length} mask updates that moved weights`);
    t.ok(updates.every((u) => u.layers.every((l) => l.density === trainer.layers.find((a) => a.name === l.layer)!.density)), `${method}: per-layer densities never drift`);
    const ends = events.filter((e): e is EpochEndEvent => e.type === 'epochEnd');
    t.comment(`${method}: train loss per epoch ${ends.map((e) => e.trainLoss.toFixed(3)).join(' → ')}, accuracy ${ends.map((e) => e.trainAccuracy.toFixed(3)).join(' → ')}`);
    t.ok(ends[ends.length - 1].trainLoss < ends[0].trainLoss - 0.05, `${method}: loss decreases (${ends[0].trainLoss.toFixed(3)} → ${ends[ends.length - 1].trainLoss.toFixed(3)})`);
    trainer.dispose();
    model.dispose();
  }
});
