import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../sinks/atomic-file';
import { copySweepArtefacts, readSweepArtefacts, reproductionReport } from './report';

/**
 * `node dist/src/sweep/report-cli.js SWEEP_DIR [--p-sweep DIR] [--assets DIR] [--out FILE]`
 * (npm run repro:report): writes the reproduction report of a sweep, to FILE or stdout. With --assets,
 * the sweeps' small artefacts are first copied there (the p sweep into DIR/p-sweep) and the report is
 * built from, and links to, the copies, so that it can be committed with the files it is made from.
 */
export async function main(argv: readonly string[], stdout: NodeJS.WritableStream = process.stdout): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { 'p-sweep': { type: 'string' }, assets: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help || positionals.length !== 1) {
    const usage = 'usage: report-cli SWEEP_DIR [--p-sweep DIR] [--assets DIR] [--out FILE]\n';
    if (values.help) return void stdout.write(usage);
    throw new Error(`expected one sweep directory, got ${positionals.length}\n${usage}`);
  }
  const assets = values.assets;
  const main = assets ? await copySweepArtefacts(positionals[0], assets) : readSweepArtefacts(positionals[0]);
  const pDir = values['p-sweep'];
  const pSweep = pDir === undefined ? undefined : assets ? await copySweepArtefacts(pDir, path.join(assets, 'p-sweep')) : readSweepArtefacts(pDir);
  const out = values.out;
  const report = reproductionReport(main, {
    outDir: out ? path.dirname(path.resolve(out)) : process.cwd(),
    pSweep,
    reportCommand: ['node dist/src/sweep/report-cli.js', ...argv].join(' '),
  });
  if (out) {
    fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
    writeFileAtomic(path.resolve(out), report);
  } else {
    stdout.write(report);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`repro report: ${err.message}\n`);
    process.exit(1);
  });
}
