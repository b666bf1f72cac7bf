/**
 * Training-step benchmark (`npm run bench:train`): images per second of cigl's training step against the
 * PyTorch peer (../shared/peers/torch_peer.py) on the same machine, for mlp, cnn and resnet20 at densities
 * 1, 0.2, 0.1 and 0.05: batch 128, random data, forward + backward + SGD with Nesterov momentum, masks
 * multiplied into the weights, 2 threads each. Our step passes the masks as the active patterns, as the
 * trainer does between mask updates, so masked convolutions may run on the sparse kernels
 * (src/compute/sparse-selection.ts); each row says which layers did. Ours and the peer alternate per configuration (ours first in even
 * rounds, the peer first in odd ones) so that drift in machine load hits both; each side's best round
 * is reported, and also against the peer's fastest round over all of the model's densities (its speed
 * does not depend on density), a conservative ratio on a noisy machine. Also prints achieved GFLOP/s (3 × forward conv/dense FLOPs per image) against the sgemm
 * ceiling. Writes the results as JSON under runs/bench/.
 *
 *   npm run bench:train -- [--seconds 10] [--rounds 2] [--models mlp,cnn,resnet20] [--densities 1,0.2,0.1,0.05]
 *                          [--backend auto] [--threads 2] [--no-peer]
 *
 * Benchmarks on the shared machines run one at a time: the script re-runs itself under
 * `flock /tmp/cigl-bench.lock` unless it already holds the lock.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BACKEND_PREFERENCES, selectBackend, type BackendPreference, type ComputeBackend } from '../src/compute/backend';
import { loadNativeAddon } from '../src/compute/native-addon';
import { resetSparseComputeReport, sparseComputeReport } from '../src/compute/sparse-selection';
import { createModel } from '../src/models/build';
import { MODEL_NAMES, type ModelName } from '../src/models/zoo';
import { repoRoot } from '../src/util/paths';
import { benchStep, BENCH_BATCH } from './bench-step';
import { forwardFlopsPerImage } from './flops';

const BATCH = BENCH_BATCH;
const LOCK = '/tmp/cigl-bench.lock';
/** OpenBLAS sgemm 4096³ on 2 threads, from ../shared/docs/cpu-compute-notes.md. */
const NOTES_SGEMM_CEILING = 430;
const PEER = path.join(repoRoot, '..', 'shared', 'peers', 'torch_peer.py');
const PYTHON = '/usr/bin/python3';

interface Options {
  seconds: number;
  rounds: number;
  models: ModelName[];
  densities: number[];
  backend: BackendPreference;
  threads: number;
  peer: boolean;
}

function parseOptions(argv: readonly string[]): Options {
  const opts: Options = { seconds: 10, rounds: 2, models: ['mlp', 'cnn', 'resnet20'], densities: [1, 0.2, 0.1, 0.05], backend: 'auto', threads: 2, peer: true };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench:train: ${flag} needs a value`);
      return v;
    };
    const positive = (v: string): number => {
      const n = Number(v);
      if (!(n > 0)) throw new Error(`bench:train: ${flag} must be a positive number, got '${v}'`);
      return n;
    };
    switch (flag) {
      case '--seconds': opts.seconds = positive(value()); break;
      case '--rounds': opts.rounds = Math.round(positive(value())); break;
      case '--threads': opts.threads = Math.round(positive(value())); break;
      case '--no-peer': opts.peer = false; break;
      case '--models':
        opts.models = value().split(',').map((m) => {
          if (!(MODEL_NAMES as readonly string[]).includes(m) || m === 'wrn-16-4') throw new Error(`bench:train: unknown model '${m}' (the peer has mlp, cnn, resnet20)`);
          return m as ModelName;
        });
        break;
      case '--densities':
        opts.densities = value().split(',').map((d) => {
          const n = Number(d);
          if (!(n > 0 && n <= 1)) throw new Error(`bench:train: density '${d}' must be in (0, 1]`);
          return n;
        });
        break;
      case '--backend': {
        const b = value();
        if (!(BACKEND_PREFERENCES as readonly string[]).includes(b)) throw new Error(`bench:train: --backend must be one of ${BACKEND_PREFERENCES.join(', ')}, got '${b}'`);
        opts.backend = b as BackendPreference;
        break;
      }
      default:
        throw new Error(`bench:train: unknown option '${flag}'`);
    }
  }
  return opts;
}

/** Re-runs this script under flock (and exits with its status) unless it already holds the benchmark lock or flock is missing. */
function ensureLock(): void {
  if (process.env.CIGL_BENCH_LOCK_HELD === '1') return;
  const probe = spawnSync('flock', ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) return;
  console.log(`waiting for ${LOCK} (one benchmark at a time)...`);
  const res = spawnSync('flock', [LOCK, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, CIGL_BENCH_LOCK_HELD: '1' },
  });
  process.exit(res.status ?? 1);
}

/** Images per second of cigl's training step for S seconds after a warm-up. */
function measureOurs(compute: ComputeBackend, model: ModelName, density: number, seconds: number): number {
  resetSparseComputeReport();
  const bench = benchStep(compute, model, density);
  try {
    for (let i = 0; i < 3; i++) bench.step();
    let steps = 0;
    const start = performance.now();
    while (performance.now() - start < seconds * 1000 || steps < 3) {
      if (!Number.isFinite(bench.step())) throw new Error(`bench:train: ${model} loss is not finite`);
      steps++;
    }
    return (steps * BATCH) / ((performance.now() - start) / 1000);
  } finally {
    bench.dispose();
  }
}

function peerAvailable(): string | undefined {
  if (!fs.existsSync(PEER)) return `${PEER} is missing`;
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  return probe.status === 0 ? undefined : `${PYTHON} has no torch`;
}

function measurePeer(model: ModelName, density: number, seconds: number, threads: number): number {
  const res = spawnSync(PYTHON, [PEER, '--model', model, '--density', String(density), '--threads', String(threads), '--seconds', String(seconds)], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`bench:train: the PyTorch peer failed (${model}, density ${density}): ${(res.stderr || '').trim().split('\n').pop()}`);
  const line = res.stdout.trim().split('\n').pop() ?? '';
  const parsed = JSON.parse(line) as { imagesPerSecond: number };
  return parsed.imagesPerSecond;
}

/** Training FLOPs per image: 3 × the forward pass's conv and dense FLOPs. */
function flopsOf(model: ModelName): number {
  const m = createModel(model, { seed: 1 });
  try {
    return 3 * forwardFlopsPerImage(m);
  } finally {
    m.dispose();
  }
}

const fixed = (v: number | undefined, digits = 0): string => (v === undefined ? '–' : v.toFixed(digits));

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  ensureLock();
  const compute = await selectBackend(opts.backend, { threads: opts.threads });
  const loaded = loadNativeAddon();
  const measuredCeiling = 'addon' in loaded ? loaded.addon.measureSgemm(4096, 3) : undefined;
  const noPeer = opts.peer ? peerAvailable() : 'disabled with --no-peer';
  console.log(`cigl: ${compute.description}`);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average at start ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`sgemm ceiling: ${NOTES_SGEMM_CEILING} GFLOP/s (notes)${measuredCeiling ? `; oneDNN sgemm 4096³ here: ${measuredCeiling.toFixed(0)} GFLOP/s` : ''}`);
  console.log(`peer: ${noPeer ? `not run (${noPeer})` : `PyTorch, ${opts.threads} threads`}; ${opts.rounds} round(s) of ${opts.seconds} s per side, best round reported\n`);

  const results = [];
  for (const model of opts.models) {
    const flopsPerImage = flopsOf(model);
    for (const density of opts.densities) {
      const ours: number[] = [];
      const peer: number[] = [];
      for (let round = 0; round < opts.rounds; round++) {
        const runOurs = (): void => void ours.push(measureOurs(compute, model, density, opts.seconds));
        const runPeer = (): void => void (noPeer ? undefined : peer.push(measurePeer(model, density, opts.seconds, opts.threads)));
        if (round % 2 === 0) { runOurs(); runPeer(); } else { runPeer(); runOurs(); }
      }
      const sparseLayers = sparseComputeReport().filter((d) => d.sparse).map((d) => d.layer);
      const best = Math.max(...ours);
      const bestPeer = peer.length ? Math.max(...peer) : undefined;
      const gflops = (best * flopsPerImage) / 1e9;
      const row = {
        model, density, flopsPerImage, sparseLayers,
        ours: { rounds: ours, best },
        peer: bestPeer === undefined ? null : { rounds: peer, best: bestPeer },
        ratio: bestPeer === undefined ? null : best / bestPeer,
        gflops,
        percentOfCeiling: (100 * gflops) / NOTES_SGEMM_CEILING,
        peerGflops: bestPeer === undefined ? null : (bestPeer * flopsPerImage) / 1e9,
      };
      results.push(row);
      console.log(`${model.padEnd(9)} density ${String(density).padEnd(4)} ours ${fixed(best).padStart(6)} img/s   peer ${fixed(bestPeer).padStart(6)} img/s   ratio ${fixed(row.ratio ?? undefined, 2).padStart(5)}   ${fixed(gflops, 1).padStart(6)} GFLOP/s (${fixed(row.percentOfCeiling, 1)}% of ${NOTES_SGEMM_CEILING})`);
      if (density < 1) console.log(`          sparse kernels: ${sparseLayers.length ? `${sparseLayers.length} layers (${sparseLayers.join(', ')})` : 'none'}`);
    }
  }

  // The peer's speed does not depend on density (it multiplies dense weights by masks), so its fastest
  // round over all of a model's densities is a conservative reference on a noisy machine.
  const fastestPeer = new Map<string, number>();
  for (const r of results) if (r.peer) fastestPeer.set(r.model, Math.max(fastestPeer.get(r.model) ?? 0, ...r.peer.rounds));
  const withConservative = results.map((r) => ({ ...r, ratioVsFastestPeer: fastestPeer.has(r.model) ? r.ours.best / fastestPeer.get(r.model)! : null }));
  console.log('\n| model | density | cigl img/s | PyTorch img/s | ratio | vs fastest peer round | cigl GFLOP/s | % of 430 | PyTorch GFLOP/s | sparse layers |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of withConservative) {
    console.log(`| ${r.model} | ${r.density} | ${fixed(r.ours.best)} | ${fixed(r.peer?.best)} | ${fixed(r.ratio ?? undefined, 2)} | ${fixed(r.ratioVsFastestPeer ?? undefined, 2)} | ${fixed(r.gflops, 1)} | ${fixed(r.percentOfCeiling, 1)} | ${fixed(r.peerGflops ?? undefined, 1)} | ${r.sparseLayers.length} |`);
  }
  const outDir = path.join(repoRoot, 'runs', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `train-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify({
    date: new Date().toISOString(), backend: compute.description, batch: BATCH, threads: opts.threads, seconds: opts.seconds, rounds: opts.rounds,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadAverageAtStart: os.loadavg() },
    sgemmCeiling: { notes: NOTES_SGEMM_CEILING, measuredOneDnn: measuredCeiling ?? null },
    peer: noPeer ? { skipped: noPeer } : { script: PEER },
    results: withConservative,
  }, null, 2));
  console.log(`\nwrote ${path.relative(process.cwd(), file)}`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
