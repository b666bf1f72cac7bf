import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { NotInstalled, selectBackend } from '../../src/compute/backend';
import { nativeOps } from '../../src/compute/native-ops';
import { portableOps } from '../../src/compute/portable-ops';
import { stockOps } from '../../src/compute/stock-ops';
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

t.test("'auto' without tfjs-node picks the native addon without a warning, and its line says why", { skip: nativeUnavailable }, async (t) => {
  const warnings: string[] = [];
  const chosen = await selectBackend('auto', { requireModule: absent, warn: (l) => warnings.push(l) });
  t.equal(chosen.ops, nativeOps);
  t.match(chosen.description, /^native: .*\(auto: no tfjs-node installed; the native addon is the fast CPU path\)$/);
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

/**
 * A stand-in for what requiring tfjs-node(-gpu) does: it registers a 'tensorflow' backend, whose object
 * says whether libtensorflow found a GPU (a cpu backend underneath; these tests only select it).
 */
function fakeTfjsNode(installed: { gpuPackage?: boolean; gpu?: boolean; cpuPackage?: boolean }): (name: string) => unknown {
  return (name) => {
    const present = name === '@tensorflow/tfjs-node-gpu' ? installed.gpuPackage : installed.cpuPackage;
    if (!present) return absent(name);
    const Cpu = (tf.findBackend('cpu') as object).constructor as new () => tf.KernelBackend;
    tf.registerBackend('tensorflow', () => Object.assign(new Cpu(), { isGPUPackage: name.endsWith('-gpu'), isUsingGpuDevice: installed.gpu === true }));
    return {};
  };
}

t.test("'auto' and tfjs-node: tfjs-node-gpu with a GPU wins; on a CPU the native addon wins; the line says why", { skip: nativeUnavailable }, async (t) => {
  t.afterEach(() => {
    if (tf.findBackend('tensorflow')) tf.removeBackend('tensorflow');
  });
  const warnings: string[] = [];
  const warn = (l: string): number => warnings.push(l);

  const gpu = await selectBackend('auto', { requireModule: fakeTfjsNode({ gpuPackage: true, gpu: true }), warn });
  t.equal(gpu.backend, 'tensorflow');
  t.equal(tf.getBackend(), 'tensorflow');
  t.match(gpu.description, /^tensorflow: @tensorflow\/tfjs-node-gpu .*\(auto: @tensorflow\/tfjs-node-gpu reports a usable GPU\)$/);
  tf.removeBackend('tensorflow');

  const noGpu = await selectBackend('auto', { requireModule: fakeTfjsNode({ gpuPackage: true, gpu: false }), warn });
  t.equal(noGpu.ops, nativeOps, 'tfjs-node-gpu without a GPU is libtensorflow on the CPU: native is faster');
  t.equal(tf.getBackend(), 'cpu');
  t.match(noGpu.description, /^native: .*\(auto: @tensorflow\/tfjs-node-gpu found no usable GPU\)$/);
  tf.removeBackend('tensorflow');

  const cpuPackage = await selectBackend('auto', { requireModule: fakeTfjsNode({ cpuPackage: true }), warn });
  t.equal(cpuPackage.ops, nativeOps);
  t.match(cpuPackage.description, /\(auto: @tensorflow\/tfjs-node is installed, but on a CPU the native sparse kernels are faster\)$/);
  tf.removeBackend('tensorflow');

  const noNative = await selectBackend('auto', {
    requireModule: fakeTfjsNode({ cpuPackage: true }),
    loadNative: () => ({ error: 'no libdnnl' }),
    warn,
  });
  t.equal(noNative.backend, 'tensorflow', 'without the addon, libtensorflow beats stock tfjs');
  t.equal(noNative.ops, stockOps);
  t.match(noNative.description, /\(auto: no libdnnl; @tensorflow\/tfjs-node is the fastest path left\)$/);
  t.same(warnings, [], 'none of these is a fallback worth a warning');
});

t.test("'auto' says in its line when an installed tfjs-node-gpu is broken", { skip: nativeUnavailable }, async (t) => {
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
  t.match(chosen.description, /\(auto: .*tfjs-node-gpu failed to load \(libcudart/);
  t.same(warnings, []);
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
