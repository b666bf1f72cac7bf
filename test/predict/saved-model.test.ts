import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { stockOps } from '../../src/compute/stock-ops';
import { createModel } from '../../src/models/build';
import { toLayersModel } from '../../src/models/export-layers';
import { loadSavedModel, readSavedModelMetadata } from '../../src/predict/saved-model';
import { saveLayersModel } from '../../src/sinks/layers-model-files';

t.before(async () => {
  await tf.setBackend('cpu');
});

const metadata = { model: 'resnet20', inputShape: [8, 8, 3], classNames: ['a', 'b', 'c'], normalisation: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, temperature: 1.7 };

async function savedResnet(dir: string, meta: Record<string, unknown> = metadata) {
  const model = createModel('resnet20', { seed: 4, inputShape: [8, 8, 3], numClasses: 3 });
  // Non-trivial BatchNorm statistics: one training-mode pass.
  const x = tf.randomNormal([6, 8, 8, 3], 0, 1, 'float32', 2);
  tf.tidy(() => model.apply(Object.fromEntries(model.params), x, true, stockOps));
  const layers = toLayersModel(model);
  await saveLayersModel(dir, layers, meta);
  layers.dispose();
  return { model, x };
}

t.test('a saved model loads back into a cigl Model whose forward pass equals the Layers model\'s', async (t) => {
  const dir = t.testdir();
  const { model, x } = await savedResnet(dir);
  const before = tf.memory().numTensors;
  const saved = await loadSavedModel(dir);
  t.equal(saved.temperature, 1.7);
  t.same(saved.metadata.classNames, ['a', 'b', 'c']);
  const expected = tf.tidy(() => model.apply(Object.fromEntries(model.params), x, false, stockOps));
  const got = tf.tidy(() => saved.model.apply(Object.fromEntries(saved.model.params), x, false, stockOps));
  t.same(Array.from(got.dataSync()), Array.from(expected.dataSync()), 'the same logits, bit for bit, with the saved BatchNorm statistics');
  tf.dispose([expected, got]);
  saved.dispose();
  t.equal(tf.memory().numTensors, before, 'loading and disposing leaves no tensors behind');
  model.dispose();
  x.dispose();
});

t.test('bad saved models are refused with the file and the field named', async (t) => {
  const dir = t.testdir();
  const { model, x } = await savedResnet(dir, { ...metadata, temperature: -1 });
  t.throws(() => readSavedModelMetadata(dir), /model\.json: metadata field temperature is -1; expected a positive number/);
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as { userDefinedMetadata: Record<string, unknown>; weightsManifest: { weights: { name: string }[] }[] };
  const rewrite = (meta: Record<string, unknown>) => fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ ...json, userDefinedMetadata: meta }));
  rewrite({ ...metadata, model: 'vgg' });
  await t.rejects(loadSavedModel(dir), /metadata field model is "vgg"; expected one of mlp, cnn, resnet20, wrn-16-4/);
  rewrite({ ...metadata, normalisation: { mean: [0.5], std: [0.25] } });
  await t.rejects(loadSavedModel(dir), /metadata field normalisation .* expected \{ mean, std \} with 3 values each/);
  rewrite({ ...metadata, classNames: ['a', 'b'] });
  await t.rejects(loadSavedModel(dir), /weight fc\/kernel has shape \[64,3\], the resnet20 needs \[64,2\]/);
  const { userDefinedMetadata: _m, ...plain } = json;
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(plain));
  await t.rejects(loadSavedModel(dir), /has no cigl metadata/);
  model.dispose();
  x.dispose();
});
