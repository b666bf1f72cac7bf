import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { statOrThrow } from './files';

export type FetchableDataset = 'cifar10' | 'cifar100';

/** The official binary archives and their published MD5 checksums. */
export const OFFICIAL_ARCHIVES: Readonly<Record<FetchableDataset, { readonly file: string; readonly md5: string }>> = {
  cifar10: { file: 'cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530' },
  cifar100: { file: 'cifar-100-binary.tar.gz', md5: '03b5dce01913d631647c71ecec9e9cb8' },
};

export const OFFICIAL_BASE_URL = 'https://www.cs.toronto.edu/~kriz';

export interface FetchOptions {
  /** Where the archive is served, without the file name. Default: the official site (OFFICIAL_BASE_URL). */
  readonly baseUrl?: string;
  /** The archive's full URL (http:, https: or file:), overriding baseUrl: a mirror or a local copy. */
  readonly url?: string;
  /** Download again even when a verified archive is already there. */
  readonly force?: boolean;
  /** Expected MD5 when a mirror serves a different archive; default: the official checksum. */
  readonly md5?: string;
  /** How many times an interrupted transfer resumes automatically before giving up. Default 3. */
  readonly retries?: number;
  /** Milliseconds without data before a transfer counts as interrupted. Default 60,000. */
  readonly idleTimeoutMs?: number;
  /** Called as bytes arrive: bytes on disk so far and the total when the server says it. */
  readonly onProgress?: (received: number, total: number | undefined) => void;
}

export interface FetchResult {
  /** The verified archive; readers take it as is (see readCifarBinary). */
  readonly archive: string;
  readonly md5: string;
  /** False when a verified archive was already there. */
  readonly downloaded: boolean;
}

/**
 * Downloads the official CIFAR binary archive into `destDir` and verifies its MD5. Bytes go to
 * `<archive>.part` first; an interrupted transfer resumes from there with an HTTP Range request (here,
 * up to `retries` times, and again on the next call), and only a verified file takes the final name.
 * A checksum mismatch deletes the download and throws.
 */
export async function fetchDataset(name: FetchableDataset, destDir: string, options: FetchOptions = {}): Promise<FetchResult> {
  const official = OFFICIAL_ARCHIVES[name];
  if (!official) {
    throw new Error(`unknown data set '${String(name)}' to fetch (known: ${Object.keys(OFFICIAL_ARCHIVES).join(', ')})`);
  }
  const expected = (options.md5 ?? official.md5).toLowerCase();
  const url = options.url ?? `${(options.baseUrl ?? OFFICIAL_BASE_URL).replace(/\/+$/, '')}/${official.file}`;
  const archive = path.join(destDir, official.file);
  const part = `${archive}.part`;
  fs.mkdirSync(destDir, { recursive: true });

  if (options.force) fs.rmSync(archive, { force: true });
  if (fs.existsSync(archive)) {
    const md5 = await md5File(archive);
    if (md5 === expected) return { archive, md5, downloaded: false };
    fs.rmSync(archive); // complete but wrong (stale or damaged): resuming from it cannot help
  }

  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      await downloadInto(url, part, options);
      break;
    } catch (err) {
      if (!(err instanceof InterruptedError) || attempt >= retries) throw err;
    }
  }
  const md5 = await md5File(part);
  if (md5 !== expected) {
    fs.rmSync(part, { force: true });
    throw new Error(
      `checksum mismatch for ${official.file} from ${url}: expected md5 ${expected}, got ${md5} ` +
        `(the download was deleted; check the mirror or try again)`,
    );
  }
  fs.renameSync(part, archive);
  return { archive, md5, downloaded: true };
}

/** A transfer that stopped part-way; the `.part` file keeps what arrived. */
class InterruptedError extends Error {}

/** Where `cigl data fetch` puts archives unless told otherwise: `.cache/cigl/datasets` under the working directory. */
export function defaultDataDir(): string {
  return path.resolve('.cache', 'cigl', 'datasets');
}

/** Appends the rest of `url` to `part` (resuming from its current size), following redirects. */
async function downloadInto(url: string, part: string, options: FetchOptions, redirects = 0): Promise<void> {
  const have = fs.existsSync(part) ? fs.statSync(part).size : 0;
  if (url.startsWith('file:')) return copyLocal(url, part, have, options);
  const response = await request(url, have, options.idleTimeoutMs ?? 60_000);
  const status = response.statusCode ?? 0;
  if (status >= 300 && status < 400 && response.headers.location) {
    response.resume();
    if (redirects >= 5) throw new Error(`too many redirects fetching ${url}`);
    return downloadInto(new URL(response.headers.location, url).toString(), part, options, redirects + 1);
  }
  if (status === 416 && have > 0) {
    response.resume(); // nothing left to send: the part is complete (the checksum decides)
    return;
  }
  let flags: 'a' | 'w';
  let received: number;
  if (status === 206) {
    const start = Number(/bytes (\d+)-/.exec(response.headers['content-range'] ?? '')?.[1]);
    if (start !== have) {
      response.resume();
      throw new Error(`${url}: asked to resume at byte ${have}, server answered range starting at ${start}`);
    }
    flags = 'a';
    received = have;
  } else if (status === 200) {
    flags = 'w'; // the server ignored the Range header: start over
    received = 0;
  } else {
    response.resume();
    throw new Error(`HTTP ${status} fetching ${url}`);
  }
  const length = Number(response.headers['content-length']);
  const total = Number.isFinite(length) ? received + length : undefined;
  response.on('data', (chunk: Buffer) => {
    received += chunk.length;
    options.onProgress?.(received, total);
  });
  try {
    await saveBody(response, part, flags);
  } catch (err) {
    throw new InterruptedError(`download of ${url} interrupted after ${received} bytes (${(err as Error).message}); run again to resume`, {
      cause: err,
    });
  }
  if (total !== undefined && received < total) {
    throw new InterruptedError(`download of ${url} interrupted after ${received} of ${total} bytes; run again to resume`);
  }
}

/**
 * Writes the response body to the file and resolves or rejects only once the file is closed with every
 * received byte on disk, so that a resume that follows sees the file's final size (stream.pipeline would
 * discard buffered bytes on error and could let a pending write land after the next attempt starts).
 */
function saveBody(response: http.IncomingMessage, file: string, flags: 'a' | 'w'): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(file, { flags });
    let failure: Error | undefined;
    const stopReading = (err: Error) => {
      failure ??= err;
      response.unpipe(out);
      out.end();
    };
    response.on('error', stopReading);
    response.on('close', () => {
      if (!response.complete) stopReading(new Error('connection closed before the end of the body'));
    });
    out.on('error', (err) => {
      failure ??= err;
      response.destroy();
    });
    out.on('close', () => (failure ? reject(failure) : resolve()));
    response.pipe(out);
  });
}

/** A `file:` URL: the same resumable copy into the `.part` file, from the local archive. */
async function copyLocal(url: string, part: string, have: number, options: FetchOptions): Promise<void> {
  const source = fileURLToPath(url);
  const total = statOrThrow(source).size;
  if (have >= total) return; // complete (or longer: the checksum decides)
  let received = have;
  const input = fs.createReadStream(source, { start: have });
  input.on('data', (chunk) => {
    received += chunk.length;
    options.onProgress?.(received, total);
  });
  await pipeline(input, fs.createWriteStream(part, { flags: 'a' }));
}

function request(url: string, from: number, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  const client = url.startsWith('https:') ? https : url.startsWith('http:') ? http : undefined;
  if (!client) return Promise.reject(new Error(`unsupported URL ${url} (http, https or file only)`));
  return new Promise((resolve, reject) => {
    // agent: false, so no keep-alive socket outlives the download and holds the process open.
    const req = client.get(url, { agent: false, headers: from > 0 ? { Range: `bytes=${from}-` } : {} }, resolve);
    req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`no data for ${idleTimeoutMs} ms`)));
    req.on('error', (err) => reject(new InterruptedError(`cannot fetch ${url}: ${err.message}`, { cause: err })));
  });
}

export async function md5File(file: string): Promise<string> {
  const hash = crypto.createHash('md5');
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest('hex');
}
