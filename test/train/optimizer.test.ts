import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import type { ParamSpec } from '../../src/models/model';
import { SgdMomentum } from '../../src/train/optimizer';

t.before(async () => {
  await tf.setBackend('cpu');
});

/** torch.optim.SGD (dampening 0) in float64, the reference. */
function torchSgd(w: number[], buf: number[] | null, g: number[], lr: number, mu: number, nesterov: boolean, wd: number) {
  const gd = g.map((gi, i) => gi + wd * w[i]);
  const b = buf === null ? gd.slice() : buf.map((bi, i) => mu * bi + gd[i]);
  const d = nesterov ? gd.map((gi, i) => gi + mu * b[i]) : b;
  return { w: w.map((wi, i) => wi - lr * d[i]), buf: b };
}

t.test('matches PyTorch SGD with Nesterov momentum; weight decay on weights only', async (t) => {
  const specs: ParamSpec[] = [
    { name: 'l.w', shape: [3], kind: 'dense', maskable: true },
    { name: 'l.b', shape: [3], kind: 'bias', maskable: false },
    { name: 'bn.gamma', shape: [3], kind: 'bnGamma', maskable: false },
  ];
  const init: Record<string, number[]> = { 'l.w': [1, -2, 0.5], 'l.b': [0.5, 0.5, -1], 'bn.gamma': [1, 1, 2] };
  const params = new Map(specs.map((s) => [s.name, tf.variable(tf.tensor1d(init[s.name]))]));
  const opt = new SgdMomentum(specs, params, { momentum: 0.9, nesterov: true, weightDecay: 0.01 });
  const ref: Record<string, { w: number[]; buf: number[] | null }> = Object.fromEntries(specs.map((s) => [s.name, { w: init[s.name], buf: null }]));
  const gradSeq = [[0.1, 0.2, -0.3], [-0.05, 0.4, 0.2], [0.3, -0.1, 0.0]];
  gradSeq.forEach((g, step) => {
    const lr = 0.1 / (step + 1);
    tf.tidy(() => opt.step(Object.fromEntries(specs.map((s) => [s.name, tf.tensor1d(g)])), lr, new Map()));
    for (const s of specs) {
      const wd = s.kind === 'dense' ? 0.01 : 0;
      const r = torchSgd(ref[s.name].w, ref[s.name].buf, g, lr, 0.9, true, wd);
      ref[s.name] = r;
      const ours = Array.from(params.get(s.name)!.dataSync());
      const err = Math.max(...ours.map((v, i) => Math.abs(v - r.w[i])));
      t.ok(err < 1e-6, `step ${step} ${s.name}: max |ours − torch| = ${err.toExponential(2)}`);
    }
  });
  // Without decay the bias and gamma paths would coincide with wd = 0; check decay really differs for l.w.
  const noDecay = torchSgd([1], null, [0.1], 0.1, 0.9, true, 0).w[0];
  t.not(noDecay, torchSgd([1], null, [0.1], 0.1, 0.9, true, 0.01).w[0], 'decay changes the update');
  opt.dispose();
  params.forEach((v) => v.dispose());
});

t.test('plain momentum (no Nesterov) matches too; masked weights and their momentum stay exactly 0', async (t) => {
  const specs: ParamSpec[] = [{ name: 'l.w', shape: [4], kind: 'conv', maskable: true }];
  const w = tf.variable(tf.tensor1d([1, 0, 3, 0]));
  const params = new Map([['l.w', w]]);
  const opt = new SgdMomentum(specs, params, { momentum: 0.5, nesterov: false, weightDecay: 0 });
  const mask = tf.tensor1d([1, 0, 1, 0]);
  let ref = { w: [1, 0, 3, 0], buf: null as number[] | null };
  for (const g of [[1, 1, 1, 1], [2, -1, 0, 5]]) {
    tf.tidy(() => opt.step({ 'l.w': tf.tensor1d(g) }, 0.1, new Map([['l.w', mask]])));
    const r = torchSgd(ref.w, ref.buf, g, 0.1, 0.5, false, 0);
    // The masked reference: weights and momentum multiplied by the mask after the update.
    ref = { w: r.w.map((v, i) => (i % 2 ? 0 : v)), buf: r.buf.map((v, i) => (i % 2 ? 0 : v)) };
    const ours = Array.from(w.dataSync());
    t.ok(ours.every((v, i) => Math.abs(v - ref.w[i]) < 1e-6), `weights ${ours} ≈ ${ref.w}`);
    t.same([ours[1], ours[3]], [0, 0], 'inactive weights exactly 0');
    const buf = Array.from(opt.buffers.get('l.w')!.dataSync());
    t.same([buf[1], buf[3]], [0, 0], 'inactive momentum exactly 0');
  }
  t.throws(() => new SgdMomentum(specs, params, { momentum: 1 }), /optimizer\.momentum must be in \[0, 1\), got 1/);
  t.throws(() => opt.step({}, 0.1, new Map()), /no gradient for parameter 'l\.w'/);
  opt.dispose();
  mask.dispose();
  w.dispose();
});

t.test('the native path\'s fused kernel gives bitwise the op chain\'s weights and momentum', async (t) => {
  const { requireNativeAddon } = await import('../../src/compute/native-addon');
  const { registerNativeKernels, KERNELS } = await import('../../src/compute/native-kernels');
  const n = 5003; // not a multiple of any vector width
  let seed = 7;
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  const values = (): Float32Array => Float32Array.from({ length: n }, random);
  const specs: ParamSpec[] = [
    { name: 'c.w', shape: [n], kind: 'conv', maskable: true },
    { name: 'c.b', shape: [n], kind: 'bias', maskable: false },
  ];
  const init = new Map(specs.map((s) => [s.name, values()]));
  const grads = [0, 1, 2].map(() => new Map(specs.map((s) => [s.name, values()])));
  const mask = Float32Array.from({ length: n }, () => (random() > 0.6 ? 1 : 0));
  // A CigL-like multiplier M ⊙ Z / (1 − p): the grads are then ∂L/∂W_eff, scaled inside the update.
  const multiplier = mask.map((m) => (random() > 0.3 ? m / 0.7 : 0));
  const configs = [
    { momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
    { momentum: 0.9, nesterov: false, weightDecay: 0 },
    { momentum: 0, nesterov: false, weightDecay: 1e-4 },
    { momentum: 0.9, nesterov: true, weightDecay: 5e-4, multiplied: true },
  ];
  /** Three steps from the same start; final weights and momentum by parameter. */
  const run = (config: (typeof configs)[number]): Map<string, Float32Array[]> => {
    const params = new Map(specs.map((s) => [s.name, tf.variable(tf.tensor1d(init.get(s.name)!))]));
    const opt = new SgdMomentum(specs, params, config);
    const masks = new Map([['c.w', tf.tensor1d(mask)]]);
    const multipliers = 'multiplied' in config ? new Map([['c.w', tf.tensor1d(multiplier)]]) : undefined;
    grads.forEach((g, step) => tf.tidy(() => opt.step(Object.fromEntries([...g].map(([k, v]) => [k, tf.tensor1d(v)])), 0.1 / (step + 1), masks, multipliers)));
    const out = new Map(specs.map((s) => [s.name, [params.get(s.name)!.dataSync() as Float32Array, opt.buffers.get(s.name)!.dataSync() as Float32Array]]));
    opt.dispose();
    params.forEach((p) => p.dispose());
    masks.forEach((m) => m.dispose());
    multipliers?.forEach((m) => m.dispose());
    return out;
  };
  const chain = configs.map(run);
  t.equal(tf.getKernel(KERNELS.sgdMomentumStep, 'cpu'), undefined, 'before registration the op chain runs');
  registerNativeKernels(requireNativeAddon());
  const probe = await tf.profile(() => void run(configs[0]));
  t.ok(probe.kernelNames.includes(KERNELS.sgdMomentumStep), 'after registration the fused kernel runs');
  configs.forEach((config, i) => {
    const fused = run(config);
    for (const s of specs) {
      const [w0, b0] = chain[i].get(s.name)!;
      const [w1, b1] = fused.get(s.name)!;
      const differing = w0.findIndex((v, j) => !Object.is(v, w1[j])) + b0.findIndex((v, j) => !Object.is(v, b1[j]));
      t.equal(differing, -2, `${JSON.stringify(config)} ${s.name}: every weight and momentum value bitwise equal`);
    }
    t.ok(fused.get('c.w')![0].some((v, j) => mask[j] === 0 && v !== 0) === false, 'inactive weights stay exactly 0');
  });
});
