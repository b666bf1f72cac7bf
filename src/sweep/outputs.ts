import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../sinks/atomic-file';
import type { RunSummary } from '../sinks/summary';
import { headlineBins, writeComparison } from './comparison';
import { sparsityFigurePng, sparsityFigureSvg } from './plot';
import { SWEEP_RECORD, type SweepRecord } from './record';

/**
 * Everything a sweep directory holds besides the run directories, each file written atomically:
 * `sweep.json` (the record), `comparison.md` / `comparison.arrow` / `runs.arrow` (see comparison.ts)
 * and `ece-vs-sparsity.svg` / `.png` (ECE and accuracy against sparsity, see plot.ts). The comparison and the plot are left out while no
 * run has finished.
 */
export const PLOT_FILES = { svg: 'ece-vs-sparsity.svg', png: 'ece-vs-sparsity.png' } as const;

export async function writeSweepOutputs(dir: string, record: SweepRecord, summaries: readonly RunSummary[]): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  writeJsonAtomic(path.join(dir, SWEEP_RECORD), record);
  if (summaries.length === 0) return;
  const groups = writeComparison(dir, summaries);
  const title = `ECE and accuracy vs sparsity: ${[...new Set(summaries.map((s) => s.model))].join(', ')} on the ${[...new Set(summaries.map((s) => s.split))].join('/')} split`;
  const options = { bins: headlineBins(summaries), title };
  writeFileAtomic(path.join(dir, PLOT_FILES.svg), sparsityFigureSvg(groups, options));
  writeFileAtomic(path.join(dir, PLOT_FILES.png), await sparsityFigurePng(groups, options));
}
