import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { promisify } from 'node:util';

const gunzip = promisify(zlib.gunzip);

/** Reads a whole file, turning the system's error codes into a message that names the path. */
export async function readFileOrThrow(file: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(file);
  } catch (err) {
    throw unreadable(file, err);
  }
}

/** Reads a file and gunzips it when it starts with the gzip magic bytes (so `x` and `x.gz` both work). */
export async function readMaybeGzipped(file: string): Promise<Buffer> {
  const raw = await readFileOrThrow(file);
  if (!isGzip(raw)) return raw;
  try {
    return await gunzip(raw);
  } catch (err) {
    throw new Error(`${file}: corrupt gzip data (${(err as Error).message})`);
  }
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** `stat` that reports a missing or unreadable path by name. */
export function statOrThrow(file: string): fs.Stats {
  try {
    return fs.statSync(file);
  } catch (err) {
    throw unreadable(file, err);
  }
}

/** Directory entries, sorted by code unit order (locale-independent, so label order never varies). */
export function listDirSorted(dir: string): fs.Dirent[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    throw unreadable(dir, err);
  }
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function unreadable(file: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'no such file or directory'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'is a directory, expected a file'
          : code === 'ENOTDIR'
            ? 'a parent path is not a directory'
            : (err as Error).message;
  return new Error(`cannot read ${file}: ${reason}`, { cause: err });
}
