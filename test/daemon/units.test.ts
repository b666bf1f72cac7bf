import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { resolveConfig } from '../../src/config/config';
import { buildCommands, runCommandLine } from '../../src/cli/main';
import { defaultWiring } from '../../src/cli/wiring';
import { parseEventCursor } from '../../src/daemon/event-stream';
import { DaemonMetrics } from '../../src/daemon/prometheus';
import { isRunId, newRunId } from '../../src/daemon/run-id';
import { pathSegments } from '../../src/daemon/server';
import { bearerMatches, loadOrCreateToken } from '../../src/daemon/token';
import { captureIo } from '../helpers/cli-io';
import { tempDir } from './client';

t.test('bearer tokens: exact match only, scheme case-insensitive', async (t) => {
  const token = 'abcdefghijklmnopqrstuvwxyz012345';
  t.ok(bearerMatches(`Bearer ${token}`, token));
  t.ok(bearerMatches(`bearer ${token}`, token));
  for (const header of [undefined, '', 'Bearer', 'Bearer ', `Bearer ${token} extra`, `Bearer ${token}0`, `Bearer ${token.slice(1)}`, `Basic ${token}`, token]) {
    t.notOk(bearerMatches(header, token), JSON.stringify(header));
  }
});

t.test('the token file: created 0600, reused, refused when others can read it', async (t) => {
  const file = path.join(tempDir('cigl-token-'), 'token');
  const token = loadOrCreateToken(file);
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  t.equal(loadOrCreateToken(file), token);
  t.not(loadOrCreateToken(path.join(tempDir('cigl-token-'), 'token')), token, 'each home gets its own random token');
  fs.chmodSync(file, 0o644);
  t.throws(() => loadOrCreateToken(file), /readable by others \(mode 644\); run chmod 600/);
});

t.test('run ids: one safe path segment', async (t) => {
  for (const ok of ['a', 'run-1', 'cigl-cnn-d0.1-s0-20250101-120000-abcdef', 'A.b_c-d']) t.ok(isRunId(ok), ok);
  for (const bad of ['', '.', '..', '.hidden', '-x', 'a/b', 'a\\b', '%2e', 'a b', 'x'.repeat(101), 'é']) t.notOk(isRunId(bad), JSON.stringify(bad));
  const config = resolveConfig({ base: { sparse: { method: 'rigl', density: 0.05 }, seed: 3 } });
  const id = newRunId(config, new Date('2025-01-02T03:04:05Z'));
  t.match(id, /^rigl-cnn-d0\.05-s3-20250102-030405-[0-9a-f]{6}$/);
  t.ok(isRunId(id));
});

t.test('request paths are split and decoded without normalising dot segments', async (t) => {
  t.same(pathSegments('/'), []);
  t.same(pathSegments('/runs?x=1'), ['runs']);
  t.same(pathSegments('/runs/a%2Fb/events'), ['runs', 'a/b', 'events']);
  t.same(pathSegments('/runs/../token'), ['runs', '..', 'token']);
  t.throws(() => pathSegments('/runs/%E0%A4%A'), /malformed percent-encoding/);
  t.throws(() => pathSegments('http://example.com/runs'), /must be a path/);
});

t.test('Last-Event-ID cursors', async (t) => {
  t.same(parseEventCursor(undefined), { metrics: 0, maskStats: 0 });
  t.same(parseEventCursor('12:3'), { metrics: 12, maskStats: 3 });
  for (const bad of ['12', '-1:0', 'a:b', '1:2:3', '1e3:0']) t.throws(() => parseEventCursor(bad), /Last-Event-ID must be/, bad);
});

t.test('Prometheus text (prom-client): HELP and TYPE per family, escaped labels, and the daemon process\'s own health', async (t) => {
  const counts = { queued: 2, running: 1, completed: 0, failed: 0, diverged: 0, cancelled: 0 };
  const metrics = new DaemonMetrics(async () => ({
    runs: counts,
    queue: { queue: 'redis://q:6379', worker: 'vm:7', runs: counts, workers: [{ worker: 'vm:7', runs: { ...counts, queued: 0 } }] },
    training: [{ id: 'r"1\\', step: 5, imagesPerSecond: 120.5 }],
    tensors: 7,
    tensorBytes: 1024,
    streams: { events: 1, arrow: 0 },
    uptimeSeconds: 1.5,
  }));
  t.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  const text = await metrics.scrape();
  t.match(text, /^# HELP cigl_queue_depth .+\n# TYPE cigl_queue_depth gauge\ncigl_queue_depth 2\n/m);
  t.match(text, /\ncigl_run_images_per_second\{run="r\\"1\\\\"\} 120\.5\n/);
  t.match(text, /\ncigl_images_per_second 120\.5\n/);
  t.match(text, /\ncigl_tfjs_tensors 7\n/);
  t.match(text, /\ncigl_runs\{state="queued"\} 2\n/);
  t.match(text, /\ncigl_runs\{state="diverged"\} 0\n/);
  t.match(text, /\ncigl_worker_runs\{worker="vm:7",state="running"\} 1\n/);
  t.match(text, /\ncigl_queue_info\{queue="redis:\/\/q:6379",worker="vm:7"\} 1\n/);
  t.match(text, /\nnodejs_eventloop_lag_p99_seconds \d/, "prom-client's default metrics: event-loop lag");
  t.match(text, /\nprocess_resident_memory_bytes \d/);
  t.ok(text.endsWith('\n'));
});

t.test('cigl daemon: listed in the help, with its own --help; bad flags exit 2', async (t) => {
  const commands = buildCommands(defaultWiring);
  const top = captureIo(process.cwd());
  t.equal(await runCommandLine(['--help'], commands, top), 0);
  t.match(top.stdout.text, /daemon\s+run the training daemon/);
  const help = captureIo(process.cwd());
  t.equal(await runCommandLine(['daemon', '--help'], commands, help), 0);
  for (const flag of ['--home DIR', '--host ADDR', '--port N', '--concurrency N', '--data-root DIR', '--queue URL', '--runs-dir DIR', '--lock-duration MS']) t.match(help.stdout.text, flag);
  for (const argv of [['--port', '70000'], ['--port', 'x'], ['--concurrency', '0'], ['--bogus'], ['--queue', 'http://host:1'], ['--queue', 'redis://h:1', '--attempts', '0'], ['--lock-duration', '5000']]) {
    const io = captureIo(process.cwd());
    t.equal(await runCommandLine(['daemon', ...argv], commands, io), 2, argv.join(' '));
    t.match(io.stderr.text, /cigl daemon: .*\nRun 'cigl daemon --help'/);
  }
});
