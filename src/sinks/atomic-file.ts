import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Crash-safe file writing: a reader (or a process resumed after `kill -9`) sees either the old file or
 * the complete new one, never a torn write. Data is written to a sibling temporary file, fsynced, and
 * renamed over the target; the directory is fsynced so the rename itself survives a power cut.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    writeAndSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

/** `writeFileAtomic` of pretty-printed JSON with a trailing newline. */
export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Writes a whole file and fsyncs it before closing. */
export function writeAndSync(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    writeFully(fd, bytes, file);
    syncFile(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** writeSync may write fewer bytes than asked; loop until all are on the file (`file` names it in errors). */
export function writeFully(fd: number, bytes: Uint8Array, file: string): void {
  let offset = 0;
  try {
    while (offset < bytes.length) {
      offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
    }
  } catch (err) {
    throw ioError(err, 'write', file);
  }
}

/** fsync of an open file (`file` names it in errors). */
export function syncFile(fd: number, file: string): void {
  try {
    fs.fsyncSync(fd);
  } catch (err) {
    throw ioError(err, 'sync', file);
  }
}

/**
 * An error of an fs call on an open file descriptor, which names no file ("ENOSPC: no space left on
 * device, write"), as one that does: "cannot write FILE: ENOSPC: ...", with `code` and `path` kept.
 */
export function ioError(err: unknown, action: string, file: string): Error {
  const e = err as NodeJS.ErrnoException;
  if (!(err instanceof Error) || err.message.includes(file)) return err as Error;
  return Object.assign(new Error(`cannot ${action} ${file}: ${e.message}`), { code: e.code, errno: e.errno, syscall: e.syscall, path: file });
}

/** Makes directory entries (creations, renames) durable. Not every platform can open a directory. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows cannot fsync a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
