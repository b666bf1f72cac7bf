import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { readArrowLog } from '../../src/sinks/arrow-log';
import { runPaths } from '../../src/sinks/run-dir';
import { RUN_OUTPUT_LOG } from '../../src/daemon/run-scheduler';
import { fakeConfig, postJson, request, startTestDaemon, tempDir } from './client';
import { fakeRunner, fakeWeightAfter } from './fake-train-job';

t.test('submit → queued → running → completed, with the finished outputs in the run directory', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  const submitted = await d.submit(fakeConfig('first-run', 2));
  t.equal(submitted.status, 201, submitted.text);
  const run = submitted.json();
  t.equal(run.id, 'first-run');
  t.equal(submitted.headers.location, '/runs/first-run');
  t.equal(run.pipeline, 'train');
  t.equal(run.epochs, 2);

  const done = await d.waitForRun('first-run', (r) => r.state === 'completed');
  t.equal(done.step, 20, 'all 2 × 10 steps');
  t.equal(done.attempts, 1);
  t.ok(done.summary, 'GET /runs/:id carries summary.json once finished');
  t.equal(done.summary.steps, 20);
  t.equal(done.config.output.runsDir, path.join(d.daemon.home.runsDir), 'written under the daemon runs folder');

  const dir = path.join(d.daemon.home.runsDir, 'first-run');
  const paths = runPaths(dir);
  for (const file of [paths.config, paths.summary, paths.metricsFile, paths.reliabilitySvg, path.join(paths.model, 'fake-weights.json')]) {
    t.ok(fs.existsSync(file), `${path.relative(dir, file)} exists`);
  }
  t.equal(JSON.parse(fs.readFileSync(path.join(paths.model, 'fake-weights.json'), 'utf8')).weight, fakeWeightAfter(20));
  t.equal(readArrowLog(dir, 'metrics').numRows, 20 * 4 + 2 * 5 + 4 * 3, 'every step, epoch end and mask update logged');
  t.match(fs.readFileSync(path.join(dir, RUN_OUTPUT_LOG), 'utf8'), /step 1\/20/, "the job's progress output is kept in the run directory");

  const list = (await request(d.url, '/runs')).json();
  t.same(list.runs.map((r: { id: string; state: string }) => [r.id, r.state]), [['first-run', 'completed']]);
  const queue = (await request(d.url, '/queue')).json();
  t.match(queue, { queue: 'embedded', runs: { completed: 1, queued: 0 }, workers: [{ worker: queue.worker, runs: { completed: 1 } }] }, 'GET /queue: by state and per worker');
  const svg = await request(d.url, '/runs/first-run/reliability.svg');
  t.equal(svg.status, 200);
  t.equal(svg.headers['content-type'], 'image/svg+xml');
  t.equal(svg.text, fs.readFileSync(paths.reliabilitySvg, 'utf8'));
});

t.test('invalid requests are answered 400 naming the field, and queue nothing', async (t) => {
  const d = await startTestDaemon({ dataRoots: [tempDir('cigl-data-')] });
  t.teardown(() => d.stop());
  const cases: { body: unknown; field: string; message: RegExp }[] = [
    { body: { pipeline: 'train', config: { sparse: { density: 3 } } }, field: 'sparse.density', message: /\(0, 1\]/ },
    { body: { pipeline: 'train', config: { train: { epoch: 2 } } }, field: 'train.epoch', message: /unknown field.*train\.epochs/ },
    { body: { pipeline: 'train', config: { train: { epochs: 'many' } } }, field: 'train.epochs', message: /integer/ },
    { body: { pipeline: 'train', config: { model: { name: 'resnet21' } } }, field: 'model.name', message: /resnet20/ },
    { body: { pipeline: 'train', config: { output: { runName: '../escape' } } }, field: 'output.runName', message: /letters, digits/ },
    { body: { pipeline: 'train', config: { output: { runsDir: '/tmp/elsewhere' } } }, field: 'output.runsDir', message: /set by the daemon/ },
    { body: { pipeline: 'train', config: { data: { path: '/etc' } } }, field: 'data.path', message: /data roots/ },
    { body: { pipeline: 'train', config: { data: { path: '../../../../etc' } } }, field: 'data.path', message: /data roots/ },
    { body: { pipeline: 'train', config: { data: { path: 'cifar\u0000/../../etc' } } }, field: 'data.path', message: /must not contain control characters/ },
    { body: { pipeline: 'train', config: { data: { path: 'two\nlines' } } }, field: 'data.path', message: /must not contain control characters/ },
    { body: { pipeline: 'train', config: { data: { path: 'no-such-data' } } }, field: 'data.path', message: /"[^"]*no-such-data" does not exist/ },
    { body: { pipeline: 'dance', config: {} }, field: 'pipeline', message: /one of train/ },
    { body: { config: {} }, field: 'pipeline', message: /one of train/ },
    { body: { pipeline: 'train', config: {}, priority: 1 }, field: 'priority', message: /unknown field/ },
    // Keys named like Object.prototype members are no fields either (they were let through before issue 18).
    { body: JSON.parse('{"pipeline":"train","config":{},"constructor":1}'), field: 'constructor', message: /unknown field/ },
    { body: { pipeline: 'train', config: { toString: {} } }, field: 'toString', message: /unknown field/ },
    { body: { pipeline: 'train', config: { data: { constructor: 1 } } }, field: 'data.constructor', message: /unknown field/ },
    { body: { pipeline: 'train', config: JSON.parse('{"__proto__":{"toString":1}}') }, field: '__proto__', message: /unknown field/ },
    { body: { pipeline: 'train', config: { sparse: JSON.parse('{"__proto__":1}') } }, field: 'sparse.__proto__', message: /unknown field/ },
  ];
  for (const c of cases) {
    const res = await postJson(d.url, '/runs', c.body, d.token);
    t.equal(res.status, 400, `${c.field}: ${res.text}`);
    const body = res.json();
    t.equal(body.problems?.[0]?.field, c.field, `the answer names ${c.field}`);
    t.match(body.error, c.field, 'and the message does too');
    t.match(body.problems[0].message, c.message);
  }
  const notJson = await request(d.url, '/runs', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${d.token}` }, body: '{"pipeline":' });
  t.equal(notJson.status, 400);
  t.match(notJson.json().error, /not valid JSON/);
  const wrongType = await request(d.url, '/runs', { method: 'POST', headers: { 'content-type': 'text/plain', authorization: `Bearer ${d.token}` }, body: '{}' });
  t.equal(wrongType.status, 415);
  const huge = await request(d.url, '/runs', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${d.token}` },
    body: JSON.stringify({ pipeline: 'train', config: {}, pad: 'x'.repeat(2 << 20) }),
  });
  t.equal(huge.status, 413);
  t.same((await request(d.url, '/runs')).json().runs, [], 'nothing was queued');
  t.same(fs.readdirSync(d.daemon.home.runsDir), [], 'nothing was written to the runs folder');
});

t.test('a duplicate run name is refused with 409', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('twice', 1))).status, 201);
  const again = await d.submit(fakeConfig('twice', 1));
  t.equal(again.status, 409);
  t.equal(again.json().problems[0].field, 'output.runName');
  await d.waitForRun('twice', (r) => r.state === 'completed');

  // A run directory that no queued run owns (made by `cigl train`, or by hand) is refused up front too.
  const handmade = path.join(d.daemon.home.runsDir, 'handmade');
  fs.mkdirSync(handmade);
  fs.writeFileSync(path.join(handmade, 'notes.txt'), 'mine');
  const taken = await d.submit(fakeConfig('handmade', 1));
  t.equal(taken.status, 409, taken.text);
  t.match(taken.json().error, /a run directory .*handmade exists already, though no run of this daemon's queue owns it; choose another output\.runName/);
  t.equal(taken.json().problems[0].field, 'output.runName');
  t.equal((await request(d.url, '/runs/handmade')).status, 404, 'nothing was queued');
  t.same(fs.readdirSync(handmade), ['notes.txt'], 'and the directory is untouched');
});

t.test('mutating requests without the right bearer token get 401 and change nothing', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  const body = { pipeline: 'train', config: fakeConfig('guarded', 1) };
  const attempts: (string | undefined)[] = [
    undefined,
    '',
    'Bearer',
    `Bearer ${d.token}x`,
    `Bearer ${d.token.slice(0, -1)}`,
    `Basic ${Buffer.from(`user:${d.token}`).toString('base64')}`,
    `Bearer ${'A'.repeat(d.token.length)}`,
    `Token ${d.token}`,
  ];
  for (const authorization of attempts) {
    const headers = { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) };
    const res = await request(d.url, '/runs', { method: 'POST', headers, body: JSON.stringify(body) });
    t.equal(res.status, 401, `POST /runs with ${JSON.stringify(authorization)}`);
    t.match(res.headers['www-authenticate'], /^Bearer/);
  }
  t.same((await request(d.url, '/runs')).json().runs, [], 'nothing was queued');

  t.equal((await postJson(d.url, '/runs', body, d.token)).status, 201, 'the right token is accepted');
  const cancel = await request(d.url, '/runs/guarded/cancel', { method: 'POST', headers: { authorization: 'Bearer nope' } });
  t.equal(cancel.status, 401);
  const cancelUnknown = await request(d.url, '/runs/no-such-run/cancel', { method: 'POST' });
  t.equal(cancelUnknown.status, 401, 'the token is checked before the run is looked up');
  const run = await d.waitForRun('guarded', (r) => r.state === 'completed');
  t.notOk(run.cancelRequested, 'the unauthorised cancel had no effect');
  t.equal((await request(d.url, '/runs', { method: 'GET', headers: { authorization: 'Bearer wrong' } })).status, 200, 'reads need no token');
});

t.test('the token file is created with mode 0600 and reused on restart', async (t) => {
  const home = path.join(tempDir('cigl-daemon-'), 'home');
  const first = await startTestDaemon({ home });
  const token = first.token;
  await first.stop();
  t.equal(fs.statSync(path.join(home, 'token')).mode & 0o777, 0o600);
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  const second = await startTestDaemon({ home });
  t.teardown(() => second.stop());
  t.equal(second.token, token);
});

t.test('unknown paths get 404, wrong methods 405, and the dashboard is served with a strict CSP', async (t) => {
  const d = await startTestDaemon();
  t.teardown(() => d.stop());
  t.equal((await request(d.url, '/nothing')).status, 404);
  t.equal((await request(d.url, '/runs/no-such-run')).status, 404);
  t.equal((await request(d.url, '/runs/no-such-run/events')).status, 404);
  const wrong = await request(d.url, '/runs', { method: 'DELETE' });
  t.equal(wrong.status, 405);
  t.equal(wrong.headers.allow, 'GET, POST');
  const page = await request(d.url, '/');
  t.equal(page.status, 200);
  t.match(page.headers['content-type'], /text\/html/);
  t.match(page.headers['content-security-policy'], /default-src 'none'/);
  t.notMatch(page.text, /(src|href)="https?:/, 'no external assets');
  const foreignHost = await request(d.url, '/runs', { headers: { host: 'attacker.example:80' } });
  t.equal(foreignHost.status, 421, 'a loopback daemon refuses non-loopback Host names (DNS rebinding)');
});

t.test("a named pipeline's defaults are merged under the submitted config (the config's values win)", async (t) => {
  const runner = fakeRunner();
  const d = await startTestDaemon({
    pipelines: {
      train: { runner },
      rigl: { runner, defaults: { sparse: { method: 'rigl' }, average: { enabled: false } }, description: 'RigL' },
    },
  });
  t.teardown(() => d.stop());
  t.same((await request(d.url, '/pipelines')).json().pipelines, [
    { name: 'train', description: '', defaults: {} },
    { name: 'rigl', description: 'RigL', defaults: { sparse: { method: 'rigl' }, average: { enabled: false } } },
  ]);
  const plain = (await d.submit(fakeConfig('p1', 1), 'rigl')).json();
  t.match(plain, { method: 'rigl', density: 0.1 });
  const denser = (await d.submit({ ...fakeConfig('p2', 1), sparse: { density: 0.05 } }, 'rigl')).json();
  t.match(denser, { method: 'rigl', density: 0.05 }, 'merged within a section');
  const own = (await d.submit({ ...fakeConfig('p3', 1), sparse: { method: 'set' } }, 'rigl')).json();
  t.match(own, { method: 'set' }, 'the submitted value wins');
  const detail = (await request(d.url, '/runs/p2')).json();
  t.equal(detail.config.average.enabled, false);
  t.equal((await d.submit(fakeConfig('p4', 1), 'train')).json().method, 'cigl', 'the train pipeline adds nothing');
  for (const id of ['p1', 'p2', 'p3', 'p4']) await d.waitForRun(id, (r) => r.state === 'completed');
});
