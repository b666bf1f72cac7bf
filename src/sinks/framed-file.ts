import { createHash } from 'node:crypto';

/**
 * The envelope shared by cigl's binary files (sparse model, checkpoint arrays):
 *
 * ```
 * magic        8 bytes ASCII, names the file kind
 * version      uint32 LE
 * headerBytes  uint32 LE, length H of the JSON header
 * header       H bytes UTF-8 JSON, then zero padding to a multiple of 8
 * body         bytes described by the header
 * sha256       32 bytes, digest of everything before it
 * ```
 *
 * The checksum makes a truncated or bit-flipped file fail loudly instead of loading wrong weights.
 */
export interface Framed {
  readonly version: number;
  readonly header: unknown;
  /** A view into the decoded buffer; copy out of it before keeping values. */
  readonly body: Uint8Array;
}

const PREFIX_BYTES = 16;
const DIGEST_BYTES = 32;

export class CorruptFileError extends Error {
  constructor(
    readonly source: string,
    reason: string,
  ) {
    super(`${source}: ${reason}`);
    this.name = 'CorruptFileError';
  }
}

export function encodeFramed(magic: string, version: number, header: unknown, body: readonly Uint8Array[]): Buffer {
  checkMagic(magic);
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const headerPadded = pad8(PREFIX_BYTES + headerBytes.length) - PREFIX_BYTES;
  const bodyBytes = body.reduce((n, b) => n + b.length, 0);
  const out = Buffer.alloc(PREFIX_BYTES + headerPadded + bodyBytes + DIGEST_BYTES);
  out.write(magic, 0, 'latin1');
  out.writeUInt32LE(version, 8);
  out.writeUInt32LE(headerBytes.length, 12);
  headerBytes.copy(out, PREFIX_BYTES);
  let offset = PREFIX_BYTES + headerPadded;
  for (const chunk of body) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  createHash('sha256').update(out.subarray(0, offset)).digest().copy(out, offset);
  return out;
}

/**
 * Checks magic, version, length and checksum, and parses the header. `source` names the file in errors.
 */
export function decodeFramed(bytes: Uint8Array, magic: string, supportedVersion: number, source: string): Framed {
  checkMagic(magic);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < PREFIX_BYTES + DIGEST_BYTES) {
    throw new CorruptFileError(source, `too short to be a ${magic.trim()} file (${buf.length} bytes)`);
  }
  const found = buf.toString('latin1', 0, 8);
  if (found !== magic) {
    throw new CorruptFileError(source, `not a ${magic.trim()} file (magic ${JSON.stringify(found)})`);
  }
  const version = buf.readUInt32LE(8);
  if (version !== supportedVersion) {
    throw new CorruptFileError(source, `format version ${version} is not supported (this build reads ${supportedVersion})`);
  }
  const headerLength = buf.readUInt32LE(12);
  const bodyStart = pad8(PREFIX_BYTES + headerLength);
  const digestStart = buf.length - DIGEST_BYTES;
  if (bodyStart > digestStart) {
    throw new CorruptFileError(source, `truncated: header says ${headerLength} header bytes but the file has ${buf.length} bytes`);
  }
  const expected = buf.subarray(digestStart);
  const actual = createHash('sha256').update(buf.subarray(0, digestStart)).digest();
  if (!actual.equals(expected)) {
    throw new CorruptFileError(source, 'checksum mismatch: the file is corrupt or truncated');
  }
  let header: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', PREFIX_BYTES, PREFIX_BYTES + headerLength));
  } catch (err) {
    throw new CorruptFileError(source, `header is not valid JSON (${(err as Error).message})`);
  }
  return { version, header, body: buf.subarray(bodyStart, digestStart) };
}

/** Copies `count` little-endian float32 values starting at `offset` of `body` (bit-exact, NaN payloads kept). */
export function readFloat32(body: Uint8Array, offset: number, count: number, source: string, what: string): Float32Array {
  if (offset < 0 || offset + count * 4 > body.length || offset % 4 !== 0) {
    throw new CorruptFileError(source, `${what}: values at byte ${offset} (+${count * 4}) lie outside the body (${body.length} bytes)`);
  }
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(body.subarray(offset, offset + count * 4));
  return out;
}

/** The raw bytes of a Float32Array (little-endian on every platform cigl supports). */
export function float32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export function pad8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function checkMagic(magic: string): void {
  if (magic.length !== 8) throw new Error(`framed-file magic must be 8 characters, got ${JSON.stringify(magic)}`);
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('cigl binary files assume a little-endian machine');
}
