import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { stockOps } from '../../src/compute/stock-ops';
import { createModel } from '../../src/models/build';
import { toLayersModel } from '../../src/models/export-layers';
import { MODEL_NAMES } from '../../src/models/zoo';

t.before(async () => {
  await tf.setBackend('cpu');
});

const paramsOf = (model: ReturnType<typeof createModel>): Record<string, tf.Tensor> => Object.fromEntries(model.params);

t.test('parameter counts match the PyTorch peer', async (t) => {
  // Counted from ../shared/peers/torch_peer.py (weights + dense biases + BatchNorm gamma/beta).
  const expected: Record<string, number> = {
    mlp: 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10,
    cnn: 27 * 32 + 9 * 32 * 32 + 9 * 32 * 64 + 9 * 64 * 64 + 2 * (32 + 32 + 64 + 64) + 4096 * 10 + 10,
    resnet20: 272474,
  };
  for (const name of ['mlp', 'cnn', 'resnet20'] as const) {
    const model = createModel(name, { seed: 1 });
    const count = model.specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    t.equal(count, expected[name], `${name} has ${expected[name]} parameters`);
    t.notOk(model.specs.at(-2)!.maskable, `${name}: the classifier is not maskable`);
    t.ok(model.specs.every((s) => s.maskable === (s.kind === 'conv' || s.kind === 'dense') || s.name.startsWith(name === 'mlp' ? 'fc3' : 'fc')));
    model.dispose();
  }
});

t.test('same seed gives the same initial weights; another seed differs', async (t) => {
  const a = createModel('cnn', { seed: 3 });
  const b = createModel('cnn', { seed: 3 });
  const c = createModel('cnn', { seed: 4 });
  const bytes = (m: typeof a): Buffer => Buffer.from((m.params.get('conv2.w')!.dataSync() as Float32Array).buffer);
  t.ok(bytes(a).equals(bytes(b)), 'same seed: identical bytes');
  t.notOk(bytes(a).equals(bytes(c)), 'other seed: different weights');
  [a, b, c].forEach((m) => m.dispose());
});

t.test('every model runs forward on a small input without leaking tensors', async (t) => {
  for (const name of MODEL_NAMES) {
    const inputShape = name === 'mlp' ? [8, 8, 1] : [8, 8, 3];
    const model = createModel(name, { seed: 0, inputShape, numClasses: 5 });
    const before = tf.memory().numTensors;
    const logits = tf.tidy(() => model.apply(paramsOf(model), tf.randomNormal([2, ...inputShape]), true, stockOps));
    t.same(logits.shape, [2, 5], `${name} logits shape`);
    logits.dispose();
    t.equal(tf.memory().numTensors, before, `${name}: no tensor leaked`);
    model.dispose();
  }
});

t.test('the exported Layers model predicts what the cigl model evaluates', async (t) => {
  for (const name of ['cnn', 'resnet20'] as const) {
    const model = createModel(name, { seed: 5, inputShape: [8, 8, 3], numClasses: 4 });
    const x = tf.randomNormal([3, 8, 8, 3], 0, 1, 'float32', 9);
    // One training-mode pass moves the running statistics off their initial values.
    tf.tidy(() => model.apply(paramsOf(model), x, true, stockOps));
    const ours = tf.tidy(() => model.apply(paramsOf(model), x, false, stockOps));
    const layers = toLayersModel(model);
    const theirs = layers.predict(x) as tf.Tensor;
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0]);
    t.ok(diff < 1e-4, `${name}: max |difference| ${diff} < 1e-4`);
    tf.dispose([ours, theirs, x]);
    layers.dispose();
    model.dispose();
  }
});

t.test('creating and disposing a model leaves no tensor behind', async (t) => {
  const before = tf.memory().numTensors;
  for (const name of MODEL_NAMES) createModel(name, { seed: 1, inputShape: name === 'mlp' ? [16] : [8, 8, 3] }).dispose();
  t.equal(tf.memory().numTensors, before);
});
