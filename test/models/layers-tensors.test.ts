import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { createModel } from '../../src/models/build';
import { layersTensors, layersWeights, toLayersModel } from '../../src/models/export-layers';
import { MODEL_NAMES } from '../../src/models/zoo';
import { saveLayersModel } from '../../src/sinks/layers-model-files';

t.before(async () => {
  await tf.setBackend('cpu');
});

t.test('layersTensors names every weight of the saved Layers model, with its shape, for every zoo model', async (t) => {
  for (const name of MODEL_NAMES) {
    const model = createModel(name, { seed: 1, inputShape: name === 'mlp' ? [12] : [8, 8, 3], numClasses: 3 });
    const layers = toLayersModel(model);
    const dir = t.testdir();
    await saveLayersModel(dir, layers, {});
    const manifest = (JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as { weightsManifest: { weights: { name: string; shape: number[] }[] }[] }).weightsManifest[0].weights;
    const mapping = layersTensors(model.architecture);
    t.same(
      mapping.map((m) => [m.layersName, m.shape]).sort(),
      manifest.map((w) => [w.name, w.shape]).sort(),
      `${name}: the same ${manifest.length} names and shapes as weights.bin's manifest`,
    );
    const ciglNames = new Set([...model.specs.map((s) => s.name), ...[...model.bnStats.keys()].flatMap((l) => [`mean/${l}`, `variance/${l}`])]);
    t.same(new Set(mapping.map((m) => m.ciglName)), ciglNames, `${name}: every parameter and BatchNorm statistic once`);
    layers.dispose();
    model.dispose();
  }
});

t.test('layersWeights: values by Layers name; a missing or misshapen tensor is named', async (t) => {
  const model = createModel('cnn', { seed: 1, inputShape: [8, 8, 3], numClasses: 2 });
  const arrays = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, { shape: model.params.get(n)!.shape, values: model.params.get(n)!.dataSync() as Float32Array }]));
  const params = arrays(model.specs.map((s) => s.name));
  const batchNorm = Object.fromEntries([...model.bnStats].flatMap(([l, s]) => [[`mean/${l}`, { shape: s.mean.shape, values: s.mean.dataSync() as Float32Array }], [`variance/${l}`, { shape: s.variance.shape, values: s.variance.dataSync() as Float32Array }]]));
  const weights = layersWeights(model.architecture, params, batchNorm);
  t.equal(weights.find((w) => w.name === 'conv2/kernel')!.values, params['conv2.w'].values);
  t.equal(weights.find((w) => w.name === 'conv2_bn/moving_variance')!.values, batchNorm['variance/conv2'].values);
  const { 'fc.b': _dropped, ...withoutBias } = params;
  t.throws(() => layersWeights(model.architecture, withoutBias, batchNorm), /no value for 'fc\.b' \(Layers weight fc\/bias\)/);
  t.throws(() => layersWeights(model.architecture, { ...params, 'fc.b': { shape: [3], values: new Float32Array(3) } }, batchNorm), /'fc\.b' has shape \[3\], expected \[2\]/);
  model.dispose();
});
