import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import { DaemonHomeError } from './daemon-home';

/**
 * The bearer token that guards mutating requests. Generated once (32 bytes from the OS CSPRNG,
 * base64url) and stored with mode 0600; a token file that others can read is refused, as ssh refuses a
 * readable private key, because anyone who can read it can submit and cancel runs.
 */
export function loadOrCreateToken(file: string): string {
  try {
    fs.writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new DaemonHomeError(`cannot create token file ${file}: ${(err as Error).message}`);
  }
  const stat = fs.statSync(file);
  if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
    throw new DaemonHomeError(`token file ${file} is readable by others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 ${file}`);
  }
  const token = fs.readFileSync(file, 'utf8').trim();
  if (token.length < 16) throw new DaemonHomeError(`token file ${file} holds no usable token (${token.length} characters); delete it to generate a new one`);
  return token;
}

/**
 * Whether an `Authorization` header carries `Bearer <token>`. Both sides are hashed to equal-length
 * digests before a constant-time comparison, so neither the token's content nor its length leaks
 * through timing.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  const given = createHash('sha256').update(m ? m[1] : '').digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) && m !== null;
}
