import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../sinks/atomic-file';
import { reproductionReport } from './report';
import { loadStudy, type StudyPart } from './study';

/**
 * `node dist/src/sweep/report-cli.js [--pilot DIR] [--p-sweep DIR] [--main DIR] [--second DIR] [--assets DIR] [--out FILE]`
 * (npm run repro:report): writes the reproduction report of the study's sweeps (see study.ts), to FILE or
 * stdout. Any sweep may be missing or partly finished; the report says which runs it lacks. With --assets,
 * each sweep's small artefacts are first copied to DIR/<sweep folder name> (relative paths, per-epoch
 * tables, figures) and the report is built from, and links to, the copies, so that it can be committed
 * with the files it is made from; a sweep folder that does not exist is then read from its earlier copy.
 * Giving the copies themselves as the sweeps regenerates the same report.
 */
const OPTIONS: Readonly<Record<string, StudyPart>> = { pilot: 'pilot', 'p-sweep': 'pSweep', main: 'main', second: 'second' };
const USAGE = 'usage: report-cli [--pilot DIR] [--p-sweep DIR] [--main DIR] [--second DIR] [--assets DIR] [--out FILE]\n';

export async function main(argv: readonly string[], stdout: NodeJS.WritableStream = process.stdout, stderr: NodeJS.WritableStream = process.stderr): Promise<void> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      ...Object.fromEntries(Object.keys(OPTIONS).map((o) => [o, { type: 'string' as const }])),
      assets: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) return void stdout.write(USAGE);
  if (positionals.length > 0) throw new Error(`unexpected argument ${positionals[0]}: name each sweep with its option\n${USAGE}`);
  const given = values as Record<string, string | boolean | undefined>;
  const sources = Object.fromEntries(Object.entries(OPTIONS).flatMap(([option, part]) => (typeof given[option] === 'string' ? [[part, given[option] as string]] : [])));
  if (Object.keys(sources).length === 0) throw new Error(`no sweep given\n${USAGE}`);
  const study = await loadStudy(sources, values.assets as string | undefined, (line) => stderr.write(`repro report: ${line}\n`));
  const out = values.out as string | undefined;
  const report = reproductionReport(study, { outDir: out ? path.dirname(path.resolve(out)) : process.cwd() });
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
