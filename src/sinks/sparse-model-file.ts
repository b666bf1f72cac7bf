import * as fs from 'node:fs';
import { sizeOf, type NamedArray, type NamedArrays } from '../util/named-arrays';
import { writeFileAtomic } from './atomic-file';
import { CorruptFileError, decodeFramed, encodeFramed, float32Bytes, pad8, readFloat32 } from './framed-file';

/**
 * The compact sparse weights file (`model/weights.cigl-sparse`): per tensor a bitmask of the non-zero
 * entries and the float32 values of those entries only, inside the checksummed envelope of
 * framed-file.ts. At 90% sparsity a tensor takes about 1/32 + 1/10 of its dense float32 size. The format,
 * for readers outside cigl (with a Python reader and the tensor names' mapping to the Layers model's):
 * docs/model-formats.md.
 *
 * "Non-zero" means any bit pattern other than +0, so -0 and NaN survive the round trip bit-exactly.
 * Header JSON: `{ metadata, tensors: [{ name, shape, nonZeros, maskOffset, valuesOffset }] }`; the mask
 * is LSB-first (entry i is bit i % 8 of byte i / 8, row-major order).
 */
export const SPARSE_MODEL_MAGIC = 'CIGLSPRS';
export const SPARSE_MODEL_VERSION = 1;

export interface SparseModel {
  readonly arrays: NamedArrays;
  /** Free-form JSON written by the caller (method, per-layer sparsity, temperature, ECE, config hash...). */
  readonly metadata: Record<string, unknown>;
}

export interface SparseModelSize {
  readonly fileBytes: number;
  /** What the same tensors take as plain float32: 4 bytes per entry. */
  readonly denseBytes: number;
  /** fileBytes / denseBytes. */
  readonly ratio: number;
  readonly parameters: number;
  readonly nonZeros: number;
}

interface TensorEntry {
  name: string;
  shape: number[];
  nonZeros: number;
  maskOffset: number;
  valuesOffset: number;
}

export function encodeSparseModel(model: SparseModel): Buffer {
  const chunks: Uint8Array[] = [];
  const tensors: TensorEntry[] = [];
  let offset = 0;
  for (const [name, array] of Object.entries(model.arrays)) {
    checkArray(name, array);
    const { mask, values } = split(array.values);
    const maskOffset = offset;
    chunks.push(mask, new Uint8Array(pad8(mask.length) - mask.length));
    offset += pad8(mask.length);
    const valuesOffset = offset;
    const valueBytes = float32Bytes(values);
    chunks.push(valueBytes, new Uint8Array(pad8(valueBytes.length) - valueBytes.length));
    offset += pad8(valueBytes.length);
    tensors.push({ name, shape: [...array.shape], nonZeros: values.length, maskOffset, valuesOffset });
  }
  return encodeFramed(SPARSE_MODEL_MAGIC, SPARSE_MODEL_VERSION, { metadata: model.metadata, tensors }, chunks);
}

/** Decodes and validates; `source` (a path) names the file in errors. Throws CorruptFileError. */
export function decodeSparseModel(bytes: Uint8Array, source: string): SparseModel {
  const { header, body } = decodeFramed(bytes, SPARSE_MODEL_MAGIC, SPARSE_MODEL_VERSION, source);
  const { metadata, tensors } = parseHeader(header, source);
  const arrays: Record<string, NamedArray> = {};
  for (const t of tensors) {
    if (t.name in arrays) throw new CorruptFileError(source, `tensor ${JSON.stringify(t.name)} appears twice`);
    const size = sizeOf(t.shape);
    const maskBytes = Math.ceil(size / 8);
    if (t.maskOffset < 0 || t.maskOffset + maskBytes > body.length) {
      throw new CorruptFileError(source, `tensor ${JSON.stringify(t.name)}: mask lies outside the body`);
    }
    const mask = body.subarray(t.maskOffset, t.maskOffset + maskBytes);
    const values = readFloat32(body, t.valuesOffset, t.nonZeros, source, `tensor ${JSON.stringify(t.name)}`);
    arrays[t.name] = { shape: t.shape, values: join(mask, values, size, t.name, source) };
  }
  return { arrays, metadata };
}

/** Writes atomically (temporary file + rename). Returns the file size in bytes. */
export function writeSparseModelFile(file: string, model: SparseModel): number {
  const bytes = encodeSparseModel(model);
  writeFileAtomic(file, bytes);
  return bytes.length;
}

export function readSparseModelFile(file: string): SparseModel {
  return decodeSparseModel(fs.readFileSync(file), file);
}

/** The size of a sparse model file against the dense float32 size of the same tensors. */
export function sparseModelSize(file: string): SparseModelSize {
  const bytes = fs.readFileSync(file);
  const { header } = decodeFramed(bytes, SPARSE_MODEL_MAGIC, SPARSE_MODEL_VERSION, file);
  const { tensors } = parseHeader(header, file);
  const parameters = tensors.reduce((n, t) => n + sizeOf(t.shape), 0);
  const nonZeros = tensors.reduce((n, t) => n + t.nonZeros, 0);
  const denseBytes = parameters * 4;
  return { fileBytes: bytes.length, denseBytes, ratio: denseBytes === 0 ? 0 : bytes.length / denseBytes, parameters, nonZeros };
}

function split(values: Float32Array): { mask: Uint8Array; values: Float32Array } {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const mask = new Uint8Array(Math.ceil(values.length / 8));
  let count = 0;
  for (let i = 0; i < bits.length; i++) {
    if (bits[i] !== 0) {
      mask[i >> 3] |= 1 << (i & 7);
      count++;
    }
  }
  const nonZero = new Float32Array(count);
  const out = new Uint32Array(nonZero.buffer);
  let j = 0;
  for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) out[j++] = bits[i];
  return { mask, values: nonZero };
}

function join(mask: Uint8Array, values: Float32Array, size: number, name: string, source: string): Float32Array {
  // Copy bit patterns through Uint32 views: a float round trip through a JS number may alter NaN payloads.
  const dense = new Float32Array(size);
  const out = new Uint32Array(dense.buffer);
  const stored = new Uint32Array(values.buffer, values.byteOffset, values.length);
  let j = 0;
  for (let i = 0; i < size; i++) {
    if (mask[i >> 3] & (1 << (i & 7))) {
      if (j === stored.length) {
        throw new CorruptFileError(source, `tensor ${JSON.stringify(name)}: mask marks more entries than the ${stored.length} values stored`);
      }
      out[i] = stored[j++];
    }
  }
  if (j !== stored.length) {
    throw new CorruptFileError(source, `tensor ${JSON.stringify(name)}: mask marks ${j} entries but ${stored.length} values are stored`);
  }
  return dense;
}

function checkArray(name: string, array: NamedArray): void {
  if (!(array.values instanceof Float32Array)) throw new Error(`sparse model: tensor ${JSON.stringify(name)} must hold a Float32Array`);
  if (!array.shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new Error(`sparse model: tensor ${JSON.stringify(name)} has an invalid shape [${array.shape.join(', ')}]`);
  }
  if (sizeOf(array.shape) !== array.values.length) {
    throw new Error(
      `sparse model: tensor ${JSON.stringify(name)} has shape [${array.shape.join(', ')}] but ${array.values.length} values`,
    );
  }
}

function parseHeader(header: unknown, source: string): { metadata: Record<string, unknown>; tensors: TensorEntry[] } {
  const h = header as { metadata?: unknown; tensors?: unknown };
  if (typeof h !== 'object' || h === null || !Array.isArray(h.tensors) || typeof h.metadata !== 'object' || h.metadata === null) {
    throw new CorruptFileError(source, 'header lacks "metadata" or "tensors"');
  }
  const tensors = h.tensors.map((t: unknown, i: number) => {
    const e = t as Partial<TensorEntry>;
    const ok =
      typeof e === 'object' &&
      e !== null &&
      typeof e.name === 'string' &&
      Array.isArray(e.shape) &&
      e.shape.every((d) => Number.isInteger(d) && d >= 0) &&
      [e.nonZeros, e.maskOffset, e.valuesOffset].every((n) => Number.isInteger(n) && (n as number) >= 0);
    if (!ok) throw new CorruptFileError(source, `header entry ${i} is not a valid tensor description`);
    return e as TensorEntry;
  });
  return { metadata: h.metadata as Record<string, unknown>, tensors };
}
