import { execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { readCifarBinary } from '../../src/data/cifar-binary';
import { defaultDataDir, fetchDataset, OFFICIAL_ARCHIVES } from '../../src/data/fetch';
import { cifarRecords } from '../helpers/datasets';

/** A small archive in the official layout, built with the system tar. */
function buildArchive(dir: string): Buffer {
  const src = path.join(dir, 'src', 'cifar-10-batches-bin');
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, 'data_batch_1.bin'), cifarRecords(4, [[1], [2], [3], [4]], 1));
  fs.writeFileSync(path.join(src, 'test_batch.bin'), cifarRecords(2, [[5], [6]], 2));
  const archive = path.join(dir, 'fixture.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', path.join(dir, 'src'), 'cifar-10-batches-bin']);
  return fs.readFileSync(archive);
}

interface Served {
  baseUrl: string;
  requests: { url: string; range?: string }[];
  /** How the next responses behave, consumed in order; 'whole' when empty. */
  plan: ('whole' | 'cut')[];
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 serving `body` at /cifar-10-binary.tar.gz, with Range support. */
async function serve(body: Buffer): Promise<Served> {
  const served: Served = { baseUrl: '', requests: [], plan: [], close: async () => undefined };
  const server = http.createServer((req, res) => {
    served.requests.push({ url: req.url!, range: req.headers.range });
    if (req.url !== '/mirror/cifar-10-binary.tar.gz') {
      res.writeHead(404).end();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start >= body.length) {
      res.writeHead(416).end();
      return;
    }
    const rest = body.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'Content-Length': rest.length,
      ...(m ? { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if ((served.plan.shift() ?? 'whole') === 'cut') {
      // Send part of the body, then close the connection (FIN, so the sent bytes do arrive): an
      // interrupted transfer.
      res.write(rest.subarray(0, Math.floor(rest.length / 2)), () => res.socket?.end());
    } else {
      res.end(rest);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  served.baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mirror`;
  served.close = () => new Promise((resolve) => server.close(() => resolve()));
  return served;
}

/** A fixture archive served on 127.0.0.1 (closed after the test) and an empty destination folder. */
async function setup(t: Test): Promise<{ body: Buffer; server: Served; dest: string }> {
  const dir = t.testdir();
  const body = buildArchive(dir);
  const server = await serve(body);
  t.teardown(server.close);
  return { body, server, dest: path.join(dir, 'data') };
}

const md5 = (b: Buffer) => crypto.createHash('md5').update(b).digest('hex');

t.test('official archive names and checksums', async (t) => {
  t.same(OFFICIAL_ARCHIVES.cifar10, { file: 'cifar-10-binary.tar.gz', md5: 'c32a1d4ab5d03f1284b67883e8d87530' });
  t.same(OFFICIAL_ARCHIVES.cifar100, { file: 'cifar-100-binary.tar.gz', md5: '03b5dce01913d631647c71ecec9e9cb8' });
});

t.test('downloads, verifies, and the readers take the archive as is; a second fetch reuses it', async (t) => {
  const { body, server, dest } = await setup(t);
  const progress: number[] = [];
  const result = await fetchDataset('cifar10', dest, { baseUrl: server.baseUrl, md5: md5(body), onProgress: (n) => progress.push(n) });
  t.same(result, { archive: path.join(dest, 'cifar-10-binary.tar.gz'), md5: md5(body), downloaded: true });
  t.same(fs.readFileSync(result.archive), body);
  t.equal(progress.at(-1), body.length);
  t.notOk(fs.existsSync(`${result.archive}.part`));
  const { train } = await readCifarBinary(result.archive);
  t.same(Array.from(train.labels), [1, 2, 3, 4]);
  const again = await fetchDataset('cifar10', dest, { baseUrl: server.baseUrl, md5: md5(body) });
  t.equal(again.downloaded, false);
  t.equal(server.requests.length, 1, 'no second request');
  fs.writeFileSync(result.archive, Buffer.alloc(body.length, 1)); // damaged in place, same size
  const repaired = await fetchDataset('cifar10', dest, { baseUrl: server.baseUrl, md5: md5(body) });
  t.equal(repaired.downloaded, true);
  t.same(fs.readFileSync(repaired.archive), body, 'a damaged archive is downloaded afresh');
  t.equal(server.requests.at(-1)?.range, undefined, 'from the start, not resumed from the damaged copy');
});

t.test('an interrupted download resumes with a Range request into the .part file', async (t) => {
  const { body, server, dest } = await setup(t);
  const part = path.join(dest, 'cifar-10-binary.tar.gz.part');
  server.plan = ['cut'];
  await t.rejects(fetchDataset('cifar10', dest, { baseUrl: server.baseUrl, md5: md5(body), retries: 0 }), {
    message: /download of http:\/\/127\.0\.0\.1:\d+\/mirror\/cifar-10-binary\.tar\.gz interrupted after \d+ .*run again to resume/,
  });
  const kept = fs.statSync(part).size;
  t.ok(kept > 0 && kept < body.length, `the .part keeps ${kept} of ${body.length} bytes`);
  t.same(fs.readFileSync(part), body.subarray(0, kept), 'and they are the first bytes');
  const result = await fetchDataset('cifar10', dest, { baseUrl: server.baseUrl, md5: md5(body) });
  t.equal(result.downloaded, true);
  t.same(server.requests.map((r) => r.range), [undefined, `bytes=${kept}-`], 'the second request resumes');
  t.same(fs.readFileSync(result.archive), body);

  // Within one call: retries resume automatically.
  fs.rmSync(result.archive);
  server.requests.length = 0;
  server.plan = ['cut', 'cut'];
  const retried = await fetchDataset('cifar10', dest, { baseUrl: server.baseUrl, md5: md5(body) });
  t.same(fs.readFileSync(retried.archive), body);
  t.equal(server.requests.length, 3);
  t.ok(server.requests.slice(1).every((r) => r.range?.startsWith('bytes=')), 'each retry resumes');
});

t.test('a checksum mismatch is an error and leaves no file behind', async (t) => {
  const { body, server, dest } = await setup(t);
  await t.rejects(fetchDataset('cifar10', dest, { baseUrl: server.baseUrl }), {
    message: new RegExp(`checksum mismatch for cifar-10-binary\\.tar\\.gz from .*: expected md5 c32a1d4ab5d03f1284b67883e8d87530, got ${md5(body)}`),
  });
  t.same(fs.readdirSync(dest), []);
  await t.rejects(fetchDataset('cifar100', dest, { baseUrl: server.baseUrl }), { message: /HTTP 404 fetching .*cifar-100-binary\.tar\.gz/ });
  await t.rejects(fetchDataset('mnist' as 'cifar10', dest), { message: /unknown data set 'mnist' to fetch \(known: cifar10, cifar100\)/ });
});

t.test('a full URL, a file: URL and --force', async (t) => {
  const { body, server, dest } = await setup(t);
  const url = `${server.baseUrl}/cifar-10-binary.tar.gz`;
  const viaUrl = await fetchDataset('cifar10', dest, { url, md5: md5(body) });
  t.same(fs.readFileSync(viaUrl.archive), body);
  const forced = await fetchDataset('cifar10', dest, { url, md5: md5(body), force: true });
  t.equal(forced.downloaded, true, 'downloaded again');
  t.equal(server.requests.length, 2);

  const local = path.join(dest, '..', 'local-copy.tar.gz');
  fs.writeFileSync(local, body);
  const dest2 = path.join(dest, '..', 'from-file');
  fs.mkdirSync(dest2);
  fs.writeFileSync(path.join(dest2, 'cifar-10-binary.tar.gz.part'), body.subarray(0, 1000)); // a partial copy
  const viaFile = await fetchDataset('cifar10', dest2, { url: pathToFileURL(local).href, md5: md5(body) });
  t.same(fs.readFileSync(viaFile.archive), body, 'file: URL resumes the partial copy');
  await t.rejects(fetchDataset('cifar100', dest2, { url: pathToFileURL(path.join(dest, 'nope.tar.gz')).href }), {
    message: /cannot read .*nope\.tar\.gz: no such file or directory/,
  });
  await t.rejects(fetchDataset('cifar100', dest2, { url: 'ftp://example.org/x.tar.gz', retries: 0 }), {
    message: /unsupported URL ftp:\/\/example\.org\/x\.tar\.gz \(http, https or file only\)/,
  });
  t.match(defaultDataDir(), /\.cache[\\/]cigl[\\/]datasets$/);
});
