import t from 'tap';
import { createModel } from '../../src/models/build';
import { allocateLayers } from '../../src/sparse/density';
import { layerDensities, modelDensity } from '../../src/sparse/model-density';

t.test('density over the masked layers and over all parameters, from masks and parameter sizes', async (t) => {
  const layers = layerDensities({ a: { values: [1, 0, 0, 1] }, b: { values: [0, 0, 0, 0, 0, 1] } });
  t.same(layers, [{ layer: 'a', size: 4, active: 2 }, { layer: 'b', size: 6, active: 1 }]);
  const d = modelDensity({ a: 4, b: 6, 'b.bias': 2, gamma: 8 }, layers);
  t.same(d.masked, { weights: 10, active: 3, density: 0.3 });
  t.same(d.all, { weights: 20, active: 13, density: 13 / 20 }, 'unmasked parameters count in full');
  t.same(modelDensity({ w: 5 }, []), { masked: { weights: 0, active: 0, density: 1 }, all: { weights: 5, active: 5, density: 1 } }, 'a dense model');
  t.throws(() => modelDensity({ a: 3 }, layers), /masked layer 'a' has 4 weights, the model's parameter 3/);
});

t.test('cnn at density 0.1 (ERK): the classifier decides how dense the whole model is', async (t) => {
  const model = createModel('cnn', { seed: 0 });
  const sizes = Object.fromEntries(model.specs.map((s) => [s.name, s.shape.reduce((a, b) => a * b, 1)]));
  const densityWith = (maskClassifier: boolean) => {
    const allocation = allocateLayers(model.specs, { density: 0.1, distribution: 'erk', maskClassifier });
    return modelDensity(sizes, allocation.map((l) => ({ layer: l.name, size: l.size, active: l.active })));
  };
  const classifierDense = densityWith(false);
  const classifierMasked = densityWith(true);
  t.ok(Math.abs(classifierDense.masked.density - 0.1) < 1e-4 && Math.abs(classifierMasked.masked.density - 0.1) < 1e-4, 'the masked layers hit the target either way');
  t.ok(classifierDense.all.density > 0.4, `classifier dense: ${classifierDense.all.density.toFixed(4)} of all parameters (its 40,960 weights are 38% of the model)`);
  t.ok(classifierMasked.all.density < 0.11, `classifier masked: ${classifierMasked.all.density.toFixed(4)} of all parameters`);
  t.comment(`cnn, sparse.density 0.1: all-parameter density ${classifierDense.all.density.toFixed(4)} (classifier dense), ${classifierMasked.all.density.toFixed(4)} (masked)`);
  model.dispose();
});
