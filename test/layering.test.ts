import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { repoRoot } from '../src/util/paths';

/** Every relative import of a TypeScript file, resolved to a path under the repository. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from\s+|import\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => path.resolve(path.dirname(file), m[1]));
}

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

t.test('no module outside src/cli imports from src/cli (the CLI is a client of the library, not its base)', async (t) => {
  const cli = path.join(repoRoot, 'src', 'cli');
  const offenders = ['src', 'pipelines', 'workers']
    .flatMap((d) => sources(path.join(repoRoot, d)))
    .filter((f) => !f.startsWith(cli + path.sep))
    .flatMap((f) => importsOf(f).filter((i) => i === cli || i.startsWith(cli + path.sep)).map((i) => `${path.relative(repoRoot, f)} → ${path.relative(repoRoot, i)}`));
  t.same(offenders, []);
  t.ok(sources(cli).length > 0, 'the scan sees src/cli (so an empty result means something)');
});
