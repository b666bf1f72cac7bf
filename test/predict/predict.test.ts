import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import * as tf from '@tensorflow/tfjs';
import { tableFromIPC } from 'apache-arrow';
import pl from 'nodejs-polars';
import sharp from 'sharp';
import { predict, Predictor } from '../../src/index';
import { loadDataset } from '../../src/data/load';
import { repoRoot } from '../../src/util/paths';
import { spawnNode } from '../helpers/child-process';
import { ciglBin, tinyRunWorkspace } from '../helpers/tiny-run';

/*
 * One short real run (cnn, CigL, one epoch of 18 steps on the CIFAR-10 fixture subset), then what a user does with
 * its outputs, each checked against a reference computed here without cigl's code: the exported Layers
 * model loaded from model.json + weights.bin by tfjs, inputs decoded by sharp and normalised by hand,
 * probabilities = softmax(logits / T) in float64.
 */

const fixtures = path.join(repoRoot, 'fixtures', 'cifar10-subset');
const ws = tinyRunWorkspace({
  config: {
    data: { format: 'auto', path: fixtures, batchSize: 128, workers: 1, validationFraction: 0.1, augment: false },
    model: { name: 'cnn' },
    optimiser: { lr: 0.01 },
    sparse: { method: 'cigl', density: 0.2, updateInterval: 5, randomMaskRate: 0.01 },
    train: { epochs: 1, backend: 'auto', checkpointEverySteps: 0, checkpointEveryMinutes: 0, checkpointEveryEpochs: 0 },
    average: { startEpoch: 0 },
  },
});
t.teardown(ws.cleanup);
const runDir = path.join(ws.runsDir, 'tiny');
const modelDir = path.join(runDir, 'model');
const fixtureImages = ['airplane', 'cat', 'ship'].map((c) => path.join(fixtures, 'test', c, '0000.jpg'));
let trainStarted = 0;
let trainEnded = 0;
let trainOut = '';

interface SavedJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
  userDefinedMetadata: { temperature: number; normalisation: { mean: number[]; std: number[] }; classNames: string[]; density: { masked: { density: number }; all: { density: number; weights: number; active: number } } };
}
const savedJson = (): SavedJson => JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8')) as SavedJson;

t.before(async () => {
  trainStarted = Date.now();
  const run = await spawnNode(ciglBin, ['train', '--config', ws.config, '--output.runName', 'tiny']).exited;
  trainEnded = Date.now();
  if (run.code !== 0) throw new Error(`training failed (${run.code}):\n${run.stderr}`);
  trainOut = run.stdout + run.stderr;
  // A PNG too: the same first image, re-encoded.
  await sharp(fixtureImages[0]).png().toFile(path.join(ws.dir, 'airplane.png'));
  await tf.setBackend('cpu');
});
const inputFiles = () => [...fixtureImages, path.join(ws.dir, 'airplane.png')];

/** Weights of the exported Layers model, read from model.json + weights.bin by the manifest alone. */
function layersWeights(): Map<string, { shape: number[]; values: Float32Array }> {
  const json = savedJson();
  const bin = fs.readFileSync(path.join(modelDir, json.weightsManifest[0].paths[0]));
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  let offset = 0;
  for (const w of json.weightsManifest.flatMap((g) => g.weights)) {
    if (w.dtype !== 'float32') throw new Error(`unexpected dtype ${w.dtype}`);
    const n = w.shape.reduce((a, b) => a * b, 1);
    out.set(w.name, { shape: w.shape, values: new Float32Array(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + 4 * n)) });
    offset += 4 * n;
  }
  return out;
}

/** Reference: the Layers model's logits on hand-normalised pixels, and softmax(logits / T) in float64. */
async function reference(pixels: Uint8Array, count: number): Promise<{ logits: Float32Array; probabilities: number[][] }> {
  const json = savedJson();
  const { mean, std } = json.userDefinedMetadata.normalisation;
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) x[i] = (pixels[i] / 255 - mean[i % 3]) / std[i % 3];
  const bin = fs.readFileSync(path.join(modelDir, 'weights.bin'));
  const layers = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights as tf.io.WeightsManifestEntry[], weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.length) }),
  );
  const input = tf.tensor(x, [count, 32, 32, 3]);
  const out = layers.predict(input) as tf.Tensor;
  const logits = (await out.data()) as Float32Array;
  tf.dispose([input, out]);
  layers.dispose();
  const T = json.userDefinedMetadata.temperature;
  const classes = logits.length / count;
  const probabilities = Array.from({ length: count }, (_, r) => {
    const z = Array.from(logits.subarray(r * classes, (r + 1) * classes), (v) => v / T);
    const max = Math.max(...z);
    const e = z.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  });
  return { logits, probabilities };
}

async function decodeFiles(files: readonly string[]): Promise<Uint8Array> {
  const parts = await Promise.all(files.map((f) => sharp(f).removeAlpha().raw().toBuffer()));
  return new Uint8Array(Buffer.concat(parts));
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return a.length === b.length ? worst : Infinity;
}

t.test('the public API returns softmax(logits / T) of the exported Layers model on the same normalised inputs', async (t) => {
  const json = savedJson();
  const T = json.userDefinedMetadata.temperature;
  t.ok(T > 0 && Math.abs(T - 1) > 1e-3, `the run fitted a temperature other than 1 (T = ${T}), so a plain softmax would differ`);
  const files = inputFiles();
  const ref = await reference(await decodeFiles(files), files.length);
  const tensorsBefore = tf.memory().numTensors;
  const predictions = await predict(modelDir, files, { topK: 3 });
  t.equal(tf.memory().numTensors, tensorsBefore, 'predict() leaves no tensors behind');
  t.equal(predictions.length, files.length);
  const classNames = json.userDefinedMetadata.classNames;
  predictions.forEach((p, i) => {
    t.equal(p.input, files[i]);
    t.ok(maxDifference(p.probabilities, ref.probabilities[i]) < 1e-5, `${path.basename(files[i])}: probabilities match (max |Δ| ${maxDifference(p.probabilities, ref.probabilities[i]).toExponential(2)})`);
    t.ok(maxDifference(p.logits, ref.logits.subarray(i * 10, (i + 1) * 10)) < 1e-4, 'logits match the Layers model');
    const best = ref.probabilities[i].indexOf(Math.max(...ref.probabilities[i]));
    t.equal(p.classIndex, best, 'predicted class is the reference argmax');
    t.equal(p.className, classNames[best]);
    t.equal(p.confidence, p.probabilities[best]);
    t.same(p.top.map((c) => c.classIndex), [...ref.probabilities[i].keys()].sort((a, b) => ref.probabilities[i][b] - ref.probabilities[i][a]).slice(0, 3), 'top 3, most probable first');
    t.equal(p.label, undefined, 'image files have no label');
  });
  t.same(predictions[3].probabilities, predictions[0].probabilities, 'the PNG re-encoding of the first JPEG predicts the same (lossless)');
  const confidences = predictions.map((p) => p.confidence);
  t.comment(`confidences ${confidences.map((c) => c.toFixed(3)).join(', ')} at T = ${T.toFixed(3)}`);
  t.ok(Math.max(...confidences) > 0.3, 'probabilities far from uniform, so that the comparison means something');

  // Abstaining at the median confidence flags exactly the predictions below it.
  const median = [...predictions.map((p) => p.confidence)].sort((a, b) => a - b)[2];
  const predictor = await Predictor.load(modelDir);
  t.teardown(() => predictor.dispose());
  const flagged = await predictor.predictFiles(files, { abstainBelow: median, topK: 1 });
  t.same(flagged.map((p) => p.abstained), predictions.map((p) => p.confidence < median));
  t.same(flagged.map((p) => p.top.length), [1, 1, 1, 1]);
  t.equal(predictor.temperature, T);
  await t.rejects(predictor.predictFiles([path.join(repoRoot, 'README.md')]), /README\.md: not a readable image/);
});

t.test('cigl predict (a child process, as users run it): JSON lines, a table and Arrow, all matching the reference', async (t) => {
  const files = inputFiles();
  const ref = await reference(await decodeFiles(files), files.length);
  const jsonl = await spawnNode(ciglBin, ['predict', '--model', modelDir, ...files, '--format', 'jsonl', '--top-k', '2']).exited;
  t.equal(jsonl.code, 0, jsonl.stderr);
  t.notMatch(jsonl.stderr, /install our node backend/, 'no tfjs banner');
  const rows = jsonl.stdout.trim().split('\n').map((l) => JSON.parse(l) as { input: string; class: string; confidence: number; probabilities: Record<string, number>; top: { class: string }[] });
  const classNames = savedJson().userDefinedMetadata.classNames;
  t.equal(rows.length, files.length);
  rows.forEach((row, i) => {
    t.equal(row.input, files[i]);
    t.ok(maxDifference(classNames.map((c) => row.probabilities[c]), ref.probabilities[i]) < 1e-5, `row ${i}: probabilities match the reference`);
    t.equal(row.top.length, 2);
    t.equal(row.class, row.top[0].class);
  });

  const table = await spawnNode(ciglBin, ['predict', '-m', modelDir, files[1]]).exited;
  t.equal(table.code, 0, table.stderr);
  t.match(table.stdout, new RegExp(`${path.basename(files[1])} +${rows[1].class} +${rows[1].confidence.toFixed(4)}`), 'the table shows class and confidence');

  // A data set split (the fixture's 1,000 test images), as Arrow; the first 40 checked against the reference.
  const out = path.join(ws.dir, 'predictions.arrow');
  const arrow = await spawnNode(ciglBin, ['predict', '--model', modelDir, '--data', fixtures, '--format', 'arrow', '--output', out]).exited;
  t.equal(arrow.code, 0, arrow.stderr);
  const test = (await loadDataset({ format: 'image-folder', path: fixtures })).test!;
  const checked = 40;
  const dataRef = await reference(test.images.subarray(0, checked * 32 * 32 * 3), checked);
  const read = tableFromIPC(fs.readFileSync(out));
  t.equal(read.numRows, test.count);
  const column = (name: string) => Array.from(read.getChild(name)!.toArray() as ArrayLike<number>).slice(0, checked);
  const worst = Math.max(...classNames.map((c, k) => maxDifference(column(`p_${c}`), dataRef.probabilities.map((p) => p[k]))));
  t.ok(worst < 1e-5, `Arrow probabilities match the reference (max |Δ| ${worst.toExponential(2)})`);
  t.same(column('label'), Array.from(test.labels.subarray(0, checked)), 'true labels of the split');

  const bad = await spawnNode(ciglBin, ['predict', '--model', modelDir, '--format', 'arrow', files[0]]).exited;
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--format arrow needs --output FILE/);
});

t.test('a reader that closes early (cigl predict ... | head -1) ends the output quietly, exit 0', async (t) => {
  const child = spawnNode(ciglBin, ['predict', '--model', modelDir, '--data', fixtures, '--format', 'jsonl']);
  await child.waitForLine((line) => line.startsWith('{'));
  child.process.stdout!.destroy();
  const r = await child.exited;
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /EPIPE|Error/, 'no stack trace');
});

t.test('cigl eval runs the saved model on the fast path: the run\'s own test numbers, no banner, both densities', async (t) => {
  const r = await spawnNode(ciglBin, ['eval', '--model', modelDir]).exited;
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stderr, /install our node backend/, 'no tfjs banner');
  // The saved model is the run's final one (after averaging), which the run measured on the same split.
  const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as { split: string; results: { stage: string; accuracy: number; ece: Record<string, number>; nll: number }[] };
  t.equal(summary.split, 'test');
  const final = summary.results.find((s) => s.stage === 'after averaging')!;
  const row = `${(100 * final.accuracy).toFixed(2)}% +${final.ece['15'].toFixed(4)} +${final.ece['10'].toFixed(4)} +${final.nll.toFixed(4)}`;
  const T = savedJson().userDefinedMetadata.temperature;
  t.match(r.stdout, new RegExp(`saved model \\(after averaging\\) +${row} +${T.toFixed(3)} +\\d`), `the saved model names its stage; accuracy, ECE and NLL at T = 1 are the run's (${row}); its stored temperature in a column of its own`);
  t.match(r.stdout, /total, masked layers +\d+ +\d+ +0\.2\d*\n/, 'density over the masked layers (the target 0.2)');
  const all = savedJson().userDefinedMetadata.density.all;
  t.match(r.stdout, new RegExp(`total, all parameters +${all.weights} +${all.active} +${all.density.toFixed(4)}\\n`), 'and over all parameters');
});

t.test('density is labelled both ways in the run summary and the model metadata', async (t) => {
  const summary = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as { density: { masked: { density: number; weights: number }; all: { density: number; weights: number; active: number } } };
  t.ok(Math.abs(summary.density.masked.density - 0.2) < 1e-3, `masked layers at the target (${summary.density.masked.density})`);
  t.ok(summary.density.all.density > summary.density.masked.density, 'the dense classifier, biases and BatchNorm raise the all-parameter density');
  t.same(savedJson().userDefinedMetadata.density, summary.density, 'the model metadata carries the same numbers');
  t.match(trainOut, /density 0\.2 of masked layers, 0\.\d{4} of all parameters/);
  t.match(trainOut, /total, all parameters/);
});

t.test('model.safetensors, parsed by the safetensors spec alone, holds the Layers model\'s weights and its calibration', async (t) => {
  const bytes = fs.readFileSync(path.join(modelDir, 'model.safetensors'));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  t.equal(headerLength % 8, 0, 'the data starts 8-byte aligned');
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> & { __metadata__?: Record<string, string> };
  const data = bytes.subarray(8 + headerLength);
  const { __metadata__: metadata, ...tensors } = header;
  const layers = layersWeights();
  t.same(Object.keys(tensors).sort(), [...layers.keys()].sort(), 'the same tensor names as the Layers model (conv1/kernel, conv1_bn/moving_mean, ...)');
  const spans = Object.values(tensors).map((e) => e.data_offsets).sort((a, b) => a[0] - b[0]);
  t.ok(spans.every((s, i) => s[0] === (i === 0 ? 0 : spans[i - 1][1])) && spans.at(-1)![1] === data.length, 'tensors tile the data without gaps');
  for (const [name, entry] of Object.entries(tensors)) {
    const expected = layers.get(name)!;
    const [begin, end] = entry.data_offsets;
    const values = new Float32Array(data.buffer.slice(data.byteOffset + begin, data.byteOffset + end));
    t.equal(entry.dtype, 'F32', `${name}: F32`);
    t.same(entry.shape, expected.shape, `${name}: shape`);
    t.ok(Buffer.from(values.buffer).equals(Buffer.from(expected.values.buffer)), `${name}: bit-identical to weights.bin`);
  }
  const meta = savedJson().userDefinedMetadata;
  t.equal(Number(metadata!.temperature), meta.temperature, 'temperature in __metadata__');
  t.same(JSON.parse(metadata!.normalisation), meta.normalisation, 'normalisation in __metadata__');
  t.same(JSON.parse(metadata!.class_names), meta.classNames);
  t.same(JSON.parse(metadata!.cigl), meta, 'the whole cigl metadata too');
  t.match(metadata!.layout, /softmax\(logits \/ temperature\)/);
});

t.test('metrics.arrow, read with nodejs-polars: every row has a UTC millisecond timestamp of one clock, in order', async (t) => {
  const df = pl.readIPC(fs.readFileSync(path.join(runDir, 'metrics.arrow')));
  t.same(df.dtypes.map(String), ['DataType(Categorical)', 'DataType(Int64)', 'DataType(Int32)', 'DataType(Datetime(ms,UTC))', 'DataType(Categorical)', 'DataType(Categorical)', 'DataType(Float64)']);
  const times = Array.from(df.getColumn('time').toArray(), (d) => (d as unknown as Date).getTime());
  t.equal(times.length, df.height);
  t.ok(times.every((ms) => Number.isFinite(ms)), 'no null or missing timestamp');
  t.ok(times.every((ms) => ms >= trainStarted && ms <= trainEnded), 'every row, training and final evaluation alike, lies within the training process\'s lifetime on the Unix-epoch clock');
  t.ok(times.every((ms, i) => i === 0 || ms >= times[i - 1]), 'timestamps never go back in row order');
  const phases = Array.from(df.getColumn('phase').toArray()) as string[];
  const metrics = Array.from(df.getColumn('metric').toArray()) as string[];
  const finalRow = metrics.findIndex((m) => m.startsWith('after_averaging.'));
  t.ok(finalRow > 0 && phases[finalRow] !== 'train', 'the final evaluation rows are there');
  t.ok(times[finalRow] >= Math.max(...times.filter((_, i) => phases[i] === 'train')), 'and come after the training rows on the same clock');
  t.same(new Set(Array.from(df.getColumn('run_id').toArray())), new Set(['tiny']));
});
