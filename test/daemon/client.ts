import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/daemon';
import { tinyRunWorkspace } from '../helpers/tiny-run';
import { fakeRunner, type FakeJobOptions } from './fake-train-job';

/** Test helpers: a daemon on loopback in a temporary home, and a raw HTTP client for it. */

export interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
  json<T = any>(): T;
}

/**
 * One request with the path sent exactly as given (no normalisation of `..` or percent-encoding, as a
 * hostile client would send it).
 */
export function request(
  url: string,
  rawPath: string,
  options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer } = {},
): Promise<Response> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, body, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function postJson(url: string, rawPath: string, body: unknown, token?: string): Promise<Response> {
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return request(url, rawPath, { method: 'POST', headers, body: JSON.stringify(body) });
}

/** A config for the fake job: `epochs` × 10 steps, checkpoint every 5 steps. */
export function fakeConfig(runName: string, epochs = 2, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { train: { epochs, checkpointEverySteps: 5 }, output: { runName }, ...extra };
}

export interface TestDaemon {
  readonly daemon: Daemon;
  readonly url: string;
  readonly token: string;
  readonly home: string;
  readonly logs: string[];
  submit(config: Record<string, unknown>, pipeline?: string): Promise<Response>;
  /** Polls GET /runs/:id until `done` holds for the run (or the run vanishes). */
  waitForRun(id: string, done: (run: any) => boolean): Promise<any>;
  stop(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startTestDaemon(
  options: Partial<DaemonOptions> & { fake?: FakeJobOptions; home?: string } = {},
): Promise<TestDaemon> {
  const home = options.home ?? path.join(tempDir('cigl-daemon-'), 'home');
  const logs: string[] = [];
  const daemon = await startDaemon({
    pipelines: { train: { runner: fakeRunner(options.fake) } },
    pollMs: 25,
    log: (line) => logs.push(line),
    ...options,
    home,
  });
  return {
    daemon,
    url: daemon.url,
    token: daemon.token,
    home,
    logs,
    submit: (config, pipeline = 'train') => postJson(daemon.url, '/runs', { pipeline, config }, daemon.token),
    waitForRun: (id, done) => waitForRun(daemon.url, id, done),
    stop: () => daemon.shutdown(),
  };
}

export async function waitForRun(url: string, id: string, done: (run: any) => boolean): Promise<any> {
  for (;;) {
    const res = await request(url, `/runs/${id}`);
    if (res.status !== 200) throw new Error(`GET /runs/${id}: ${res.status} ${res.text}`);
    const run = res.json();
    if (done(run)) return run;
    if (['failed', 'cancelled', 'completed'].includes(run.state) && !done(run)) {
      throw new Error(`run ${id} ended ${run.state}${run.error ? `: ${run.error}` : ''} before the awaited condition`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface SseEvent {
  readonly event: string;
  readonly id?: string;
  readonly data: string;
}

/**
 * Reads an event stream to its end (the server closes it when the run has ended), parsed into events.
 * `onEvent` may return 'stop' to disconnect early.
 */
export function readEvents(
  url: string,
  rawPath: string,
  headers: http.OutgoingHttpHeaders = {},
  onEvent?: (event: SseEvent) => 'stop' | void,
): Promise<{ status: number; events: SseEvent[]; contentType?: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const req = http.get({ host: hostname, port, path: rawPath, headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
      let buffer = '';
      const done = () => resolve({ status: res.statusCode!, events, contentType: res.headers['content-type'] });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEventBlock(block);
          if (!event) continue;
          events.push(event);
          if (onEvent?.(event) === 'stop') {
            req.destroy();
            done();
            return;
          }
        }
      });
      res.on('end', done);
      res.on('error', reject);
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
  });
}

function parseEventBlock(block: string): SseEvent | undefined {
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  let any = false;
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
    else continue;
    any = true;
  }
  if (!any || data.length === 0) return undefined;
  return { event, id, data: data.join('\n') };
}

/**
 * A workspace for the real training job (test/helpers/tiny-run.ts: a tiny CIFAR-format data set and an
 * mlp config that trains in seconds) and run configs for the daemon: the data set's folder is the data
 * root, the daemon decides where the run goes, the pipeline the method; a checkpoint every 5 steps, 5
 * steps per epoch.
 */
export function realJobWorkspace(): { dir: string; dataRoot: string; config: (runName: string, epochs: number) => Record<string, unknown>; cleanup: () => void } {
  const ws = tinyRunWorkspace();
  const base = JSON.parse(fs.readFileSync(ws.config, 'utf8')) as Record<string, Record<string, unknown>>;
  return {
    dir: ws.dir,
    dataRoot: path.join(ws.dir, 'data'),
    config: (runName, epochs) => ({
      ...base,
      // No method: the pipeline named in the request decides it (its defaults).
      sparse: { density: base.sparse.density, randomMaskRate: base.sparse.randomMaskRate, updateInterval: 5 },
      train: { ...base.train, epochs, checkpointEverySteps: 5 },
      average: { startEpoch: epochs - 2 },
      output: { runName },
    }),
    cleanup: ws.cleanup,
  };
}
