import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { fakeConfig, postJson, request, startTestDaemon, tempDir } from './client';
import { fakeRunner } from './fake-train-job';

/** Every file under `root` with its size and modification time, to prove nothing changed. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const stat = fs.lstatSync(full);
      out.push(`${path.relative(root, full)} ${stat.size} ${stat.mtimeMs}`);
      if (entry.isDirectory()) walk(full);
    }
  };
  walk(root);
  return out.sort();
}

t.test('path traversal attempts (plain and encoded) get 400/404 and read or write nothing outside the runs folder', async (t) => {
  const root = tempDir('cigl-traversal-');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(outside);
  const SECRET = 'secret-outside-the-runs-folder';
  fs.writeFileSync(path.join(outside, 'secret.txt'), SECRET);
  fs.writeFileSync(path.join(outside, 'summary.json'), JSON.stringify({ leaked: SECRET }));
  const dataRoot = path.join(root, 'data');
  fs.mkdirSync(dataRoot);
  fs.symlinkSync(outside, path.join(dataRoot, 'link-out'));

  const d = await startTestDaemon({ home: path.join(root, 'home'), dataRoots: [dataRoot] });
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('good', 1, { data: { path: dataRoot } }))).status, 201);
  await d.waitForRun('good', (r) => r.state === 'completed');
  const token = fs.readFileSync(path.join(d.home, 'token'), 'utf8').trim();
  const before = snapshot(root);

  const ids = [
    '..', '.', '%2e%2e', '%2E%2E', '.%2e', '..%2f..%2foutside', '..%2F..%2Foutside%2Fsecret.txt', '..%5c..%5coutside',
    '%252e%252e', '%252e%252e%252fhome', '....%2f%2f', 'a%00b', '%c0%ae%c0%ae', '%', '%zz', '~', '%2fetc%2fpasswd',
    'good%2f..%2f..%2f..%2foutside', 'x'.repeat(200), 'good%20', '-good', '.good',
  ];
  const suffixes = ['', '/metrics', '/events', '/reliability.svg'];
  const targets = [
    ...ids.flatMap((id) => suffixes.map((s) => `/runs/${id}${s}`)),
    '/../home/token', '/%2e%2e/home/token', '/runs/../../outside/secret.txt', '/runs/good/../../../outside/secret.txt',
    '/runs/good/..%2f..%2f..%2foutside%2fsecret.txt', '/runs/good/%2e%2e/%2e%2e/token', '/runs//good', '//runs/good',
    '/runs/good/reliability.svg/..', '/runs/good/metrics/../../../home/token', '/token', '/queue.json', '/runs/good/summary.json',
    '/runs/good/config.json', '/runs/good/checkpoints/latest', '/runs/good/output.log',
  ];
  const answers = new Map<number, number>();
  for (const target of targets) {
    const res = await request(d.url, target);
    answers.set(res.status, (answers.get(res.status) ?? 0) + 1);
    t.ok(res.status === 400 || res.status === 404, `GET ${target} → ${res.status}`);
    t.notMatch(res.text, SECRET, 'no secret in the answer');
    t.notMatch(res.text, token, 'no token in the answer');
  }
  for (const id of ids) {
    const res = await request(d.url, `/runs/${id}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    t.ok(res.status === 400 || res.status === 404, `POST /runs/${id}/cancel → ${res.status}`);
  }
  t.ok((answers.get(400) ?? 0) > 50 && (answers.get(404) ?? 0) > 5, `both kinds of refusal seen: ${JSON.stringify([...answers])}`);

  // Paths inside a submitted config.
  const configs: [Record<string, unknown>, string][] = [
    [{ output: { runName: '../../outside/evil' } }, 'output.runName'],
    [{ output: { runName: '..' } }, 'output.runName'],
    [{ output: { runName: 'a/b' } }, 'output.runName'],
    [{ output: { runsDir: outside } }, 'output.runsDir'],
    [{ output: { runsDir: '../outside' } }, 'output.runsDir'],
    [{ data: { path: outside } }, 'data.path'],
    [{ data: { path: '../outside' } }, 'data.path'],
    [{ data: { path: 'link-out' } }, 'data.path'],
    [{ data: { path: path.join(dataRoot, 'link-out', 'secret.txt') } }, 'data.path'],
  ];
  for (const [config, field] of configs) {
    const res = await postJson(d.url, '/runs', { pipeline: 'train', config }, token);
    t.equal(res.status, 400, `config ${JSON.stringify(config)} → 400`);
    t.equal(res.json().problems?.[0]?.field, field);
  }

  t.same(snapshot(root), before, 'not one file was created, changed or removed');
  t.same((await request(d.url, '/runs')).json().runs.map((r: { id: string }) => r.id), ['good'], 'nothing was queued');
});

t.test('a file of a run directory that links outside the runs folder is not served', async (t) => {
  const root = tempDir('cigl-traversal-');
  fs.writeFileSync(path.join(root, 'secret.svg'), '<svg>secret-outside</svg>');
  const d = await startTestDaemon({ home: path.join(root, 'home') });
  t.teardown(() => d.stop());
  t.equal((await d.submit(fakeConfig('linked', 1))).status, 201);
  await d.waitForRun('linked', (r) => r.state === 'completed');
  const svg = path.join(d.daemon.home.runsDir, 'linked', 'reliability.svg');
  fs.rmSync(svg);
  fs.symlinkSync(path.join(root, 'secret.svg'), svg);
  const res = await request(d.url, '/runs/linked/reliability.svg');
  t.equal(res.status, 404);
  t.notMatch(res.text, 'secret-outside');
});

t.test('a run that reached the queue without the request check (a shared queue) is refused when its data lies outside the data roots', async (t) => {
  const { EmbeddedRunQueue } = await import('../../src/daemon/embedded-run-queue');
  const { parseRunRequest } = await import('../../src/daemon/run-request');
  const root = tempDir('cigl-claim-roots-');
  const dataRoot = path.join(root, 'data');
  const elsewhere = path.join(root, 'elsewhere');
  fs.mkdirSync(dataRoot);
  fs.mkdirSync(elsewhere);
  const home = path.join(root, 'home');
  const queueFile = path.join(root, 'queue.json');
  // Validated against a wider root, as another daemon (or anyone with access to Redis) might have.
  const context = { pipelines: { train: {} }, runsDir: path.join(home, 'runs'), dataRoots: [root] };
  const seeded = EmbeddedRunQueue.open(queueFile);
  await seeded.submit(parseRunRequest({ pipeline: 'train', config: fakeConfig('outside', 1, { data: { path: elsewhere } }) }, context));
  await seeded.submit(parseRunRequest({ pipeline: 'train', config: fakeConfig('inside', 1, { data: { path: dataRoot } }) }, context));
  await seeded.close();
  const trainedLog = path.join(root, 'trained.txt');
  const d = await startTestDaemon({
    home,
    dataRoots: [dataRoot],
    queue: () => EmbeddedRunQueue.open(queueFile),
    pipelines: { train: { runner: fakeRunner({ trainedLog }) } },
  });
  t.teardown(() => d.stop());
  const refused = await d.waitForRun('outside', (r) => r.state === 'failed');
  t.match(refused.error, new RegExp(`data\\.path must lie inside the daemon's data roots \\(${dataRoot}\\); got "${elsewhere}"`), 'the error names the field, the roots and the path');
  await d.waitForRun('inside', (r) => r.state === 'completed');
  t.same(fs.readFileSync(trainedLog, 'utf8').split('\n').filter(Boolean), ['inside'], 'the refused run was never handed to the pipeline');
  t.notOk(fs.existsSync(path.join(home, 'runs', 'outside')), 'and got no run directory');
});
