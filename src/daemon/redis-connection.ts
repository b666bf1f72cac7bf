import type { RedisOptions } from 'bullmq';
import Redis from 'ioredis';

/**
 * A `redis://[user:password@]host[:port][/db]` (or `rediss://` for TLS) URL as ioredis connection
 * options, and a reachability check that fails fast with the URL in the message (BullMQ itself would
 * retry forever, which looks like a hang to whoever typed a wrong address).
 */
export class RedisUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RedisUrlError';
  }
}

export function redisOptionsFromUrl(url: string): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisUrlError(`invalid Redis URL ${JSON.stringify(url)}: expected redis://HOST:PORT`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RedisUrlError(`invalid Redis URL ${JSON.stringify(url)}: the scheme must be redis:// or rediss://, got ${parsed.protocol}//`);
  }
  if (!parsed.hostname) throw new RedisUrlError(`invalid Redis URL ${JSON.stringify(url)}: no host`);
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new RedisUrlError(`invalid Redis URL ${JSON.stringify(url)}: the path must be a database number, got /${db}`);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    // BullMQ's requirement: commands wait for a reconnect (a Redis restart) instead of failing.
    maxRetriesPerRequest: null,
  };
}

/** The URL without its password, for messages and logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/** Connects once and PINGs; throws naming the URL when Redis cannot be reached within `timeoutMs`. */
export async function assertRedisReachable(url: string, timeoutMs = 5000): Promise<void> {
  const client = new Redis({
    ...redisOptionsFromUrl(url),
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined); // reported through connect() below
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw new RedisUrlError(`cannot reach Redis at ${redactedUrl(url)}: ${(err as Error).message}`);
  } finally {
    client.disconnect();
  }
}
