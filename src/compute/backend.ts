import * as tf from '@tensorflow/tfjs';
import { loadNativeAddon, type NativeLoadResult } from './native-addon';
import { registerNativeKernels } from './native-kernels';
import { nativeOps } from './native-ops';
import type { Ops } from './ops';
import { portableOps } from './portable-ops';
import { stockOps } from './stock-ops';

export { BACKEND_PREFERENCES, type BackendPreference } from './backend-names';
import { BACKEND_PREFERENCES, type BackendPreference } from './backend-names';

/** The compute path in use: the tfjs backend, the Ops the models run on, and a line for logs. */
export interface ComputeBackend {
  /** tfjs backend name: 'tensorflow', 'cpu' (native addon or stock) or 'wasm'. */
  readonly backend: string;
  readonly ops: Ops;
  /** One line saying what runs, e.g. "native: oneDNN 2.6.3 (AVX-512) convolutions, 2 threads, on the tfjs cpu backend". */
  readonly description: string;
}

export interface SelectBackendOptions {
  /** Threads for the native addon (default: OpenMP's default, all cores). */
  readonly threads?: number;
  /** Where the single fallback warning goes (default console.warn). */
  readonly warn?: (line: string) => void;
  /** For tests: how to load the native addon. */
  readonly loadNative?: () => NativeLoadResult;
  /** For tests: how to require tfjs-node(-gpu); throwing NotInstalled means 'absent'. */
  readonly requireModule?: (name: string) => unknown;
}

/**
 * Activates a compute backend. 'auto' chooses by what is fastest where it runs: tfjs-node-gpu when it
 * reports a usable GPU; on a CPU the native addon (its sparse kernels skip the pruned weights, which
 * libtensorflow's dense convolutions cannot); else tfjs-node (libtensorflow on the CPU); else stock tfjs
 * on wasm, then on cpu (both with the portable convolution gradient). The chosen backend's description
 * ends with the reason for the choice, so one log line says both; when 'auto' falls back to stock tfjs it
 * also warns once. An explicit preference that cannot be met throws an error saying why.
 */
export async function selectBackend(preference: BackendPreference = 'auto', options: SelectBackendOptions = {}): Promise<ComputeBackend> {
  const warn = options.warn ?? ((line: string) => console.warn(line));
  const loadNative = options.loadNative ?? loadNativeAddon;
  const requireModule = options.requireModule ?? requireInstalled;
  switch (preference) {
    case 'tensorflow': {
      const found = loadTfjsNode(requireModule);
      if ('error' in found) throw new Error(`backend 'tensorflow' is unavailable: ${found.error}`);
      return activate('tensorflow', stockOps, `tensorflow: ${found.name} (libtensorflow)`);
    }
    case 'native': {
      const loaded = loadNative();
      if ('error' in loaded) throw new Error(`backend 'native' is unavailable: ${loaded.error}`);
      return activateNative(loaded.addon, options.threads);
    }
    case 'wasm':
      return activateWasm();
    case 'cpu':
      return activateCpu();
    case 'auto': {
      const node = loadTfjsNode(requireModule);
      const passedOver: string[] = [];
      if (!('error' in node)) {
        if (node.name === '@tensorflow/tfjs-node-gpu') {
          const tensorflow = await activate('tensorflow', stockOps, `tensorflow: ${node.name} (libtensorflow)`);
          if (usingGpu()) return because(tensorflow, `${node.name} reports a usable GPU`);
          passedOver.push(`${node.name} found no usable GPU`);
        } else {
          passedOver.push(`${node.name} is installed, but on a CPU the native sparse kernels are faster`);
        }
      } else if (node.installedButBroken) {
        passedOver.push(node.error);
      }
      const loaded = loadNative();
      if (!('error' in loaded)) {
        const native = await activateNative(loaded.addon, options.threads);
        return because(native, passedOver.length ? passedOver.join('; ') : 'no tfjs-node installed; the native addon is the fast CPU path');
      }
      if (!('error' in node)) {
        const tensorflow = await activate('tensorflow', stockOps, `tensorflow: ${node.name} (libtensorflow)`);
        return because(tensorflow, `${loaded.error}; ${node.name} is the fastest path left`);
      }
      let fallback: ComputeBackend;
      try {
        fallback = await activateWasm();
      } catch {
        fallback = await activateCpu();
      }
      const reason = [...passedOver, loaded.error].join('; ');
      warn(`cigl: ${reason}; using ${fallback.description} instead (much slower)`);
      return because(fallback, reason);
    }
    default:
      throw new Error(`unknown backend '${String(preference)}'; expected one of ${BACKEND_PREFERENCES.join(', ')}`);
  }
}

/** The backend with the reason it was chosen appended to its description (one log line says both). */
function because(chosen: ComputeBackend, reason: string): ComputeBackend {
  return { ...chosen, description: `${chosen.description} (auto: ${reason})` };
}

/**
 * Whether the active 'tensorflow' backend runs on a GPU: tfjs-node(-gpu)'s backend object carries
 * isUsingGpuDevice, set from libtensorflow's device list when the backend was created.
 */
function usingGpu(): boolean {
  const backend = tf.findBackend('tensorflow') as unknown as { isUsingGpuDevice?: boolean } | null;
  return backend?.isUsingGpuDevice === true;
}

async function activate(backend: string, ops: Ops, description: string): Promise<ComputeBackend> {
  if (!(await tf.setBackend(backend))) throw new Error(`tfjs could not initialise the '${backend}' backend`);
  if (backend === 'cpu') silenceCpuBanner();
  return { backend, ops, description };
}

/**
 * tfjs' cpu backend prints a multi-line "install tfjs-node" banner the first time it stores a tensor.
 * cigl has said in its own line what runs (and why, when it falls back), so the banner is noise; the
 * flag it checks is an internal of tfjs-backend-cpu, set here before first use.
 */
function silenceCpuBanner(): void {
  const cpu = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (cpu && 'firstUse' in cpu) cpu.firstUse = false;
}

async function activateNative(addon: import('./native-addon').NativeAddon, threads?: number): Promise<ComputeBackend> {
  if (threads !== undefined) addon.setNumThreads(threads);
  registerNativeKernels(addon);
  const info = addon.info();
  return activate('cpu', nativeOps,
    `native: oneDNN ${info.onednn} (${info.isa}) convolutions and fused BatchNorm/ReLU, ${info.threads} thread${info.threads === 1 ? '' : 's'}, on the tfjs cpu backend`);
}

async function activateWasm(): Promise<ComputeBackend> {
  require('@tensorflow/tfjs-backend-wasm');
  return activate('wasm', portableOps, 'stock tfjs on wasm (1 thread, portable convolution gradient)');
}

async function activateCpu(): Promise<ComputeBackend> {
  return activate('cpu', portableOps, 'stock tfjs on the cpu backend (portable convolution gradient)');
}

/** Thrown by requireInstalled when a package is not installed at all. */
export class NotInstalled extends Error {}

/** require(), telling 'not installed' apart from 'installed but failing to load'. */
function requireInstalled(name: string): unknown {
  try {
    require.resolve(name);
  } catch {
    throw new NotInstalled(`${name} is not installed`);
  }
  return require(name);
}

/** @tensorflow/tfjs-node-gpu, else @tensorflow/tfjs-node; requiring either registers 'tensorflow'. */
function loadTfjsNode(requireModule: (name: string) => unknown): { name: string } | { error: string; installedButBroken: boolean } {
  const problems: string[] = [];
  let installedButBroken = false;
  for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      requireModule(name);
      return { name };
    } catch (e) {
      if (e instanceof NotInstalled) {
        problems.push(e.message);
      } else {
        installedButBroken = true;
        problems.push(`${name} failed to load (${(e as Error).message.split('\n')[0]})`);
      }
    }
  }
  return { error: problems.join('; '), installedButBroken };
}
