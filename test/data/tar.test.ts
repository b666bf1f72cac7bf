import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseTar, readTarArchive } from '../../src/data/tar';

t.test('reads the files of a tar made by the system tar, long names included, plain and gzipped', async (t) => {
  const longDir = 'd'.repeat(90) + '/' + 'e'.repeat(60);
  const dir = t.testdir({ src: { 'a.txt': 'alpha', empty: '', [longDir.split('/')[0]]: { [longDir.split('/')[1]]: { 'b.bin': Buffer.alloc(1500, 9) } } } });
  for (const format of ['ustar', 'gnu', 'pax']) {
    const tarFile = path.join(dir, `${format}.tar`);
    execFileSync('tar', [`--format=${format}`, '-cf', tarFile, '-C', path.join(dir, 'src'), '.']);
    const entries = parseTar(fs.readFileSync(tarFile), tarFile);
    const byName = new Map(entries.map((e) => [e.name.replace(/^\.\//, ''), e.data]));
    t.equal(byName.get('a.txt')?.toString(), 'alpha', `${format}: small file`);
    t.equal(byName.get('empty')?.length, 0, `${format}: empty file`);
    t.same(byName.get(`${longDir}/b.bin`), Buffer.alloc(1500, 9), `${format}: long path`);
    t.equal(entries.length, 3, `${format}: directories are not entries`);
  }
  execFileSync('tar', ['-czf', path.join(dir, 'x.tar.gz'), '-C', path.join(dir, 'src'), 'a.txt']);
  const gz = await readTarArchive(path.join(dir, 'x.tar.gz'));
  t.same(gz.map((e) => [e.name, e.data.toString()]), [['a.txt', 'alpha']]);
});

t.test('a truncated archive is an error naming the file', async (t) => {
  const dir = t.testdir({ src: { 'big.bin': Buffer.alloc(5000, 1) } });
  const tarFile = path.join(dir, 'x.tar');
  execFileSync('tar', ['-cf', tarFile, '-C', path.join(dir, 'src'), 'big.bin']);
  const cut = fs.readFileSync(tarFile).subarray(0, 2048);
  t.throws(() => parseTar(cut, tarFile), { message: /x\.tar: truncated tar archive: entry at byte 0 needs 5000 bytes, only 1536 left/ });
});
