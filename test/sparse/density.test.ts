import t from 'tap';
import { allocateLayers, erkDensities, maskedSpecs } from '../../src/sparse/density';
import { createModel } from '../../src/models/build';
import type { ParamSpec } from '../../src/models/model';
import { paramSpecs } from '../../src/models/build';
import { architecture } from '../../src/models/zoo';

const specsOf = (name: 'mlp' | 'cnn' | 'resnet20' | 'wrn-16-4'): readonly ParamSpec[] => paramSpecs(architecture(name));
const sum = (a: readonly number[]): number => a.reduce((x, y) => x + y, 0);

t.test('ERK solves ε with the dense-overflow re-solve (hand-computed case)', async (t) => {
  // Layers 10×10 and 100×100 at density 0.5: raw = 0.2 and 0.02; first ε = 5050 / 220 = 22.95 puts the
  // small layer at 4.59 > 1, so it becomes dense and ε = (5050 − 100) / 200 = 24.75 → 0.495.
  const d = erkDensities([[10, 10], [100, 100]], 0.5);
  t.equal(d[0], 1);
  t.ok(Math.abs(d[1] - 0.495) < 1e-12, `second layer density ${d[1]} = 0.495`);
  const specs: ParamSpec[] = [
    { name: 'a.w', shape: [10, 10], kind: 'dense', maskable: true },
    { name: 'b.w', shape: [100, 100], kind: 'dense', maskable: true },
  ];
  t.same(allocateLayers(specs, { density: 0.5, distribution: 'erk' }).map((l) => l.active), [100, 4950]);
});

t.test('ERK: exact target total, no layer above 1, densities ∝ (Σ shape)/(Π shape) among sparse layers', async (t) => {
  for (const model of ['mlp', 'cnn', 'resnet20', 'wrn-16-4'] as const) {
    for (const density of [0.02, 0.1, 0.2, 0.5, 0.9]) {
      const specs = specsOf(model);
      const layers = allocateLayers(specs, { density, distribution: 'erk' });
      const total = sum(layers.map((l) => l.size));
      t.equal(sum(layers.map((l) => l.active)), Math.round(density * total), `${model} @${density}: total active = round(density × size)`);
      t.ok(layers.every((l) => Number.isInteger(l.active) && l.active >= 0 && l.active <= l.size), `${model} @${density}: every count an integer in [0, size]`);
      t.ok(layers.every((l) => l.density <= 1), `${model} @${density}: no density above 1`);
      // The real ERK solution: density / raw is one ε over the layers not made dense, and each count is
      // that solution rounded (within one weight).
      const real = erkDensities(specs.filter((s) => layers.some((l) => l.name === s.name)).map((s) => s.shape), density);
      const ratios = layers.map((l, i) => real[i] / (sum(l.shape) / l.size)).filter((_, i) => real[i] < 1);
      t.ok(ratios.every((r) => Math.abs(r / ratios[0] - 1) < 1e-9), `${model} @${density}: one ε for all sparse layers`);
      t.ok(layers.every((l, i) => Math.abs(l.active - real[i] * l.size) < 1), `${model} @${density}: counts within one weight of ε·raw·size`);
      t.ok(Math.abs(sum(real.map((d, i) => d * layers[i].size)) - density * total) < 1e-6 * total, `${model} @${density}: real densities sum to the target`);
    }
  }
});

t.test('ERK at high density makes the smallest-fan layers dense and still hits the target', async (t) => {
  const layers = allocateLayers(specsOf('cnn'), { density: 0.9, distribution: 'erk' });
  const conv1 = layers.find((l) => l.name === 'conv1.w')!;
  t.equal(conv1.density, 1, 'conv1 (864 weights, largest raw ERK density) is dense');
  const total = sum(layers.map((l) => l.size));
  t.equal(sum(layers.map((l) => l.active)), Math.round(0.9 * total));
});

t.test('uniform: every layer at the target density up to one weight, exact total', async (t) => {
  const layers = allocateLayers(specsOf('resnet20'), { density: 0.1, distribution: 'uniform' });
  for (const l of layers) t.ok(Math.abs(l.active - 0.1 * l.size) <= 1, `${l.name}: ${l.active} ≈ 0.1 × ${l.size}`);
  t.equal(sum(layers.map((l) => l.active)), Math.round(0.1 * sum(layers.map((l) => l.size))));
});

t.test('only conv/dense weights are masked, never biases or BatchNorm; the classifier on request; keepFirstDense drops the first', async (t) => {
  const model = createModel('cnn', { seed: 0, inputShape: [8, 8, 3] });
  const masked = maskedSpecs(model.specs).map((s) => s.name);
  t.same(masked, ['conv1.w', 'conv2.w', 'conv3.w', 'conv4.w']);
  t.same(maskedSpecs(model.specs, { keepFirstDense: true }).map((s) => s.name), ['conv2.w', 'conv3.w', 'conv4.w']);
  t.same(maskedSpecs(model.specs, { maskClassifier: true }).map((s) => s.name), ['conv1.w', 'conv2.w', 'conv3.w', 'conv4.w', 'fc.w']);
  const withClassifier = allocateLayers(model.specs, { density: 0.1, distribution: 'erk', maskClassifier: true });
  t.equal(sum(withClassifier.map((l) => l.active)), Math.round(0.1 * sum(withClassifier.map((l) => l.size))), 'the target then covers the classifier too');
  const layers = allocateLayers(model.specs, { density: 0.2, distribution: 'erk', keepFirstDense: true });
  t.same(layers.map((l) => l.name), ['conv2.w', 'conv3.w', 'conv4.w']);
  t.equal(sum(layers.map((l) => l.active)), Math.round(0.2 * sum(layers.map((l) => l.size))), 'target applies to the remaining masked layers');
  model.dispose();
});

t.test('bad density options are named in the error', async (t) => {
  const specs = specsOf('cnn');
  t.throws(() => allocateLayers(specs, { density: 0, distribution: 'erk' }), /sparsity\.density must be in \(0, 1\], got 0/);
  t.throws(() => allocateLayers(specs, { density: 1.5, distribution: 'uniform' }), /got 1\.5/);
  t.throws(() => allocateLayers(specs, { density: 0.1, distribution: 'erdos' as never }), /sparsity\.distribution .* got 'erdos'/);
});
