import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { NotInstalled, selectBackend } from '../../src/compute/backend';
import { nativeOps } from '../../src/compute/native-ops';
import { portableOps } from '../../src/compute/portable-ops';
import { nativeUnavailable } from './compare';

const absent = (name: string): never => {
  throw new NotInstalled(`${name} is not installed`);
};

t.afterEach(async () => {
  await tf.setBackend('cpu');
});

t.test("'native' runs the addon's ops on the cpu backend and says so", { skip: nativeUnavailable }, async (t) => {
  const chosen = await selectBackend('native');
  t.equal(chosen.backend, 'cpu');
  t.equal(tf.getBackend(), 'cpu');
  t.equal(chosen.ops, nativeOps);
  t.match(chosen.description, /^native: oneDNN \d+\.\d+\.\d+ .* on the tfjs cpu backend$/);
});

t.test("'auto' without tfjs-node picks the native addon silently", { skip: nativeUnavailable }, async (t) => {
  const warnings: string[] = [];
  const chosen = await selectBackend('auto', { requireModule: absent, warn: (l) => warnings.push(l) });
  t.equal(chosen.ops, nativeOps);
  t.same(warnings, []);
});

t.test("'auto' warns once, with the reason, when the addon cannot load and falls back to stock tfjs", async (t) => {
  const warnings: string[] = [];
  const chosen = await selectBackend('auto', {
    requireModule: absent,
    loadNative: () => ({ error: 'the native addon is not built (native/build/Release/cigl_native.node is missing)' }),
    warn: (l) => warnings.push(l),
  });
  t.equal(chosen.backend, 'wasm', 'wasm is the best stock path');
  t.equal(chosen.ops, portableOps);
  t.equal(warnings.length, 1);
  t.match(warnings[0], /native addon is not built .* using stock tfjs on wasm/);
});

t.test("'auto' prefers tfjs-node-gpu, then tfjs-node, and says when an installed one is broken", { skip: nativeUnavailable }, async (t) => {
  const tried: string[] = [];
  const warnings: string[] = [];
  const chosen = await selectBackend('auto', {
    requireModule: (name) => {
      tried.push(name);
      if (name === '@tensorflow/tfjs-node-gpu') throw new Error('libcudart.so.11.0: cannot open shared object file');
      return absent(name);
    },
    warn: (l) => warnings.push(l),
  });
  t.same(tried, ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
  t.equal(chosen.ops, nativeOps);
  t.equal(warnings.length, 1);
  t.match(warnings[0], /tfjs-node-gpu failed to load \(libcudart/);
});

t.test("an explicit backend that is unavailable is an error naming the reason", async (t) => {
  await t.rejects(selectBackend('tensorflow', { requireModule: absent }), /backend 'tensorflow' is unavailable: @tensorflow\/tfjs-node-gpu is not installed; @tensorflow\/tfjs-node is not installed/);
  await t.rejects(selectBackend('native', { loadNative: () => ({ error: 'no libdnnl' }) }), /backend 'native' is unavailable: no libdnnl/);
  await t.rejects(selectBackend('gpu' as never), /unknown backend 'gpu'; expected one of auto, tensorflow, native, wasm, cpu/);
});

t.test("'cpu' and 'wasm' run stock tfjs with the portable convolution gradient", async (t) => {
  for (const name of ['cpu', 'wasm'] as const) {
    const chosen = await selectBackend(name);
    t.equal(chosen.backend, name);
    t.equal(tf.getBackend(), name);
    t.equal(chosen.ops, portableOps);
  }
});
