import t from 'tap';
import { Trainer } from '../../src/train/trainer';
import { syntheticBatches, tinyConfig, tinyConvModel, useCpuBackend } from '../helpers/tiny-training';

t.before(useCpuBackend);

t.test('maskClassifier: the trainer masks the classifier too, and keeps its inactive weights at zero', async (t) => {
  for (const maskClassifier of [false, true]) {
    const model = tinyConvModel(3);
    const trainer = new Trainer(tinyConfig(model, { epochs: 1, sparsity: { method: 'rigl', density: 0.3, updateEvery: 2, maskClassifier } }));
    t.equal(trainer.layers.some((l) => l.name === 'fc.w'), maskClassifier, `classifier ${maskClassifier ? '' : 'not '}among the masked layers`);
    for (const batch of syntheticBatches({ epochs: 1, stepsPerEpoch: 4, size: 8 })) await trainer.process(batch);
    const fc = model.params.get('fc.w')!.dataSync() as Float32Array;
    const zeros = fc.filter((v) => v === 0).length;
    if (maskClassifier) {
      const mask = trainer.maskOf('fc.w');
      t.ok(mask.every((m, i) => m !== 0 || fc[i] === 0), 'every inactive classifier weight is exactly zero after training');
      t.equal(fc.length - zeros, trainer.layers.find((l) => l.name === 'fc.w')!.active, 'as many non-zero classifier weights as its allocation');
    } else {
      t.equal(zeros, 0, 'a dense classifier has no zeroed weights');
    }
    trainer.dispose();
    model.dispose();
  }
});
