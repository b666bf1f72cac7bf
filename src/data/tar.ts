import { isGzip, readMaybeGzipped } from './files';

/** One regular file inside a tar archive; `data` is a view into the archive bytes (no copy). */
export interface TarEntry {
  readonly name: string;
  readonly data: Buffer;
}

const BLOCK = 512;

/**
 * Regular-file entries of a tar archive (ustar, with GNU long names and pax `path` records), read from
 * a plain or gzipped file. Small on purpose: enough for the official CIFAR tarballs without a dependency.
 */
export async function readTarArchive(file: string): Promise<TarEntry[]> {
  const bytes = await readMaybeGzipped(file);
  return parseTar(bytes, file);
}

export function parseTar(bytes: Buffer, source: string): TarEntry[] {
  if (isGzip(bytes)) throw new Error(`${source}: still gzip-compressed; gunzip before parsing tar`);
  const entries: TarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= bytes.length) {
    const header = bytes.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    verifyChecksum(header, source, offset);
    const size = parseOctal(header.subarray(124, 136), source, offset);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > bytes.length) {
      throw new Error(
        `${source}: truncated tar archive: entry at byte ${offset} needs ${size} bytes, only ${bytes.length - dataStart} left`,
      );
    }
    const data = bytes.subarray(dataStart, dataEnd);
    if (type === 'L') {
      longName = cString(data);
    } else if (type === 'x') {
      longName = paxPath(data) ?? longName;
    } else if (type === '0' || type === '\0' || type === '7') {
      const name = longName ?? headerName(header);
      entries.push({ name, data });
      longName = undefined;
    } else {
      longName = undefined; // directories, links and global headers carry nothing we read
    }
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;
  }
  return entries;
}

function headerName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const isUstar = header.subarray(257, 262).toString('latin1') === 'ustar';
  const prefix = isUstar ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
}

function parseOctal(field: Buffer, source: string, offset: number): number {
  const text = cString(field).trim();
  if (!/^[0-7]*$/.test(text)) {
    throw new Error(`${source}: corrupt tar header at byte ${offset}: size field "${text}" is not octal`);
  }
  return text === '' ? 0 : parseInt(text, 8);
}

function verifyChecksum(header: Buffer, source: string, offset: number): void {
  const stored = parseOctal(header.subarray(148, 156), source, offset);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  if (sum !== stored) {
    throw new Error(`${source}: corrupt tar header at byte ${offset}: checksum ${stored}, computed ${sum}`);
  }
}

/** The `path` record of a pax extended header ("<len> path=<value>\n" records). */
function paxPath(data: Buffer): string | undefined {
  const text = data.toString('utf8');
  for (const record of text.split('\n')) {
    const m = /^\d+ path=(.*)$/.exec(record);
    if (m) return m[1];
  }
  return undefined;
}
