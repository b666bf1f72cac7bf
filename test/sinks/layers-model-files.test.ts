import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { stockOps } from '../../src/compute/stock-ops';
import { createModel } from '../../src/models/build';
import { toLayersModel } from '../../src/models/export-layers';
import { layersModelFiles, readModelMetadata, saveLayersModel } from '../../src/sinks/layers-model-files';

t.before(async () => {
  await tf.setBackend('cpu');
});

t.test('a saved model reloads with tf.loadLayersModel and gives the same predictions', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-model-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const model = createModel('resnet20', { seed: 2, inputShape: [8, 8, 3], numClasses: 3 });
  const x = tf.randomNormal([4, 8, 8, 3], 0, 1, 'float32', 1);
  tf.tidy(() => model.apply(Object.fromEntries(model.params), x, true, stockOps));
  // Bake a mask into one layer to check zeros survive.
  const w = model.params.get('s2b1.conv1.w')!;
  const masked = (w.dataSync() as Float32Array).map((v, i) => (i % 3 === 0 ? 0 : v));
  const layers = toLayersModel(model, { 's2b1.conv1.w': masked });
  await saveLayersModel(dir, layers, { method: 'cigl', temperature: 1.5 });
  const reloaded = await tf.loadLayersModel(layersModelFiles(dir));
  const a = layers.predict(x) as tf.Tensor;
  const b = reloaded.predict(x) as tf.Tensor;
  t.same(Array.from(await b.data()), Array.from(await a.data()), 'identical predictions');
  const reloadedKernel = reloaded.getLayer('s2b1_conv1').getWeights()[0].dataSync();
  t.equal(reloadedKernel[0], 0, 'masked entries stay exactly zero');
  t.same(readModelMetadata(dir), { method: 'cigl', temperature: 1.5 });
  tf.dispose([a, b, x]);
  layers.dispose();
  reloaded.dispose();
  model.dispose();
});

t.test('a missing weights file is a clear error naming it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cigl-model-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const model = createModel('mlp', { seed: 1, inputShape: [4], numClasses: 2 });
  const layers = toLayersModel(model);
  await saveLayersModel(dir, layers, {});
  fs.rmSync(path.join(dir, 'weights.bin'));
  await t.rejects(tf.loadLayersModel(layersModelFiles(dir)), /weights\.bin/);
  layers.dispose();
  model.dispose();
});
