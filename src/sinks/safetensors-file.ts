import * as os from 'node:os';
import { writeFileAtomic } from './atomic-file';
import type { ModelMetadata } from './model-metadata';

/**
 * The safetensors format (https://github.com/huggingface/safetensors), for readers outside cigl (PyTorch,
 * JAX, any language): an 8-byte little-endian unsigned length N, N bytes of UTF-8 JSON naming each
 * tensor's dtype, shape and [begin, end) byte range in the data that follows, an optional
 * `__metadata__` map of strings, then the tensors' bytes, little-endian, row-major, packed in the order
 * given. cigl writes float32 only ("F32"). The header is padded with spaces to a multiple of 8 bytes, so
 * that the data starts aligned.
 */
export interface SafetensorsTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly values: Float32Array;
}

export function encodeSafetensors(tensors: readonly SafetensorsTensor[], metadata: Readonly<Record<string, string>> = {}): Buffer {
  // Float32Array bytes are the platform's; the format is little-endian.
  if (os.endianness() !== 'LE') throw new Error('safetensors: writing from a big-endian platform is not supported');
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) throw new Error(`safetensors: tensor name ${JSON.stringify(t.name)} is reserved or repeated`);
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.values.length) throw new Error(`safetensors: tensor ${JSON.stringify(t.name)} has shape [${t.shape.join(', ')}] but ${t.values.length} values`);
    header[t.name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + 4 * size] };
    offset += 4 * size;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + headerLength + offset, 0x20);
  out.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(out, 8);
  let at = 8 + headerLength;
  for (const t of tensors) {
    out.set(new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength), at);
    at += t.values.byteLength;
  }
  return out;
}

/** Writes atomically (temporary file + rename). Returns the file size in bytes. */
export function writeSafetensorsFile(file: string, tensors: readonly SafetensorsTensor[], metadata: Readonly<Record<string, string>> = {}): number {
  const bytes = encodeSafetensors(tensors, metadata);
  writeFileAtomic(file, bytes);
  return bytes.length;
}

/**
 * A saved model's metadata (model.json's userDefinedMetadata) as safetensors `__metadata__` (strings
 * only): what a reader needs to turn the tensors into calibrated probabilities without cigl, each under
 * its own key, plus the whole record as JSON under `cigl`.
 */
export function safetensorsMetadata(metadata: Pick<ModelMetadata, 'model' | 'temperature' | 'normalisation' | 'classNames' | 'inputShape'>): Record<string, string> {
  return {
    model: metadata.model,
    temperature: String(metadata.temperature ?? 1),
    normalisation: JSON.stringify(metadata.normalisation),
    class_names: JSON.stringify(metadata.classNames),
    input_shape: JSON.stringify(metadata.inputShape),
    layout:
      'tfjs Layers names and layouts: input NHWC; conv kernels [kh, kw, in, out]; dense kernels [in, out]. ' +
      'Input: pixel / 255, minus normalisation.mean, divided by normalisation.std, per channel. ' +
      'The model outputs logits; calibrated probabilities are softmax(logits / temperature).',
    cigl: JSON.stringify(metadata),
  };
}
