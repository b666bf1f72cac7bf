import { formatTable } from '../report/summary-table';
import { describeDifference } from './claims';
import { formatStats, type ComparisonGroup } from './comparison';

/**
 * The paper's numbers beside ours: its CIFAR-10 table (ResNet-50 and WRN-22-2), and per sparsity a plain
 * statement of whether our CigL − RigL change goes the paper's way and is of the paper's size, by rules
 * stated in the report:
 *
 * - ECE, same direction: our relative change (CigL − RigL) / RigL has the sign of the paper's (negative
 *   for both architectures at every sparsity); same size: its magnitude lies between half the smaller and
 *   twice the larger of the paper's two architectures' magnitudes.
 * - Accuracy (ResNet-50 only in the paper), same direction: the sign of CigL − RigL in points matches;
 *   same size: its magnitude lies between half and twice the paper's.
 */
export const PAPER_TABLE3 = {
  citation:
    'Lei et al., "Calibrating the Rigged Lottery: Making All Tickets Reliable", ICLR 2023, Table 3 (CIFAR-10, mean of 3 runs), ' +
    'as transcribed in ../shared/docs/cigl-algorithm.md',
  sparsities: [0.8, 0.9, 0.95, 0.99],
  resnet50: {
    rigl: { accuracy: [94.02, 93.84, 93.19, 91.31], ece: [0.0423, 0.0441, 0.0504, 0.0571] },
    cigl: { accuracy: [94.75, 94.56, 94.2, 92.42], ece: [0.0356, 0.0361, 0.0385, 0.0298] },
  },
  wrn22x2: {
    rigl: { ece: [0.0319, 0.0272, 0.0235, 0.015] },
    cigl: { ece: [0.0178, 0.0159, 0.0131, 0.0101] },
  },
  /** The released code computes ECE with 10 equal-width bins. */
  eceBins: '10',
} as const;

export const PAPER_RULE =
  'ECE: same direction when our relative change (CigL − RigL) / RigL has the sign of the paper\'s; same size when its magnitude lies between half the smaller and twice the larger ' +
  'of the paper\'s ResNet-50 and WRN-22-2 magnitudes. Accuracy: the sign of CigL − RigL in points, and a magnitude between half and twice the paper\'s ResNet-50 difference';

export interface PaperComparison {
  readonly sparsity: number;
  readonly paper: { readonly eceChange: readonly [number, number]; readonly accuracyChange: number };
  readonly ours: { readonly eceChange?: number; readonly accuracyChange?: number };
  readonly eceSameDirection?: boolean;
  readonly eceSameSize?: boolean;
  readonly accuracySameDirection?: boolean;
  readonly accuracySameSize?: boolean;
  readonly statement: string;
}

const relative = (c: number, r: number) => (c - r) / r;
const percent = (v: number) => `${v < 0 ? '−' : '+'}${Math.abs(100 * v).toFixed(1)}%`;
const points = (v: number) => `${v < 0 ? '−' : '+'}${Math.abs(v).toFixed(2)} points`;
const sign = (v: number) => Math.sign(v);

function groupAt(groups: readonly ComparisonGroup[], label: string, density: number): ComparisonGroup | undefined {
  return groups.find((g) => g.label === label && Math.abs(g.density - density) < 1e-9);
}

/** Our CigL − RigL change beside the paper's, at each of the paper's sparsities where we have both. */
export function compareWithPaper(groups: readonly ComparisonGroup[], bins: string): PaperComparison[] {
  return PAPER_TABLE3.sparsities.flatMap((sparsity, i) => {
    const density = Number((1 - sparsity).toFixed(6));
    const rigl = groupAt(groups, 'rigl', density)?.headline;
    const cigl = groupAt(groups, 'cigl', density)?.headline;
    if (!rigl || !cigl) return [];
    const p = PAPER_TABLE3.resnet50;
    const w = PAPER_TABLE3.wrn22x2;
    const paperEce: [number, number] = [relative(p.cigl.ece[i], p.rigl.ece[i]), relative(w.cigl.ece[i], w.rigl.ece[i])];
    const paperAccuracy = p.cigl.accuracy[i] - p.rigl.accuracy[i];
    const [c, r] = [cigl.ece[bins], rigl.ece[bins]];
    const eceChange = c && r ? relative(c.mean, r.mean) : undefined;
    const accuracyChange = 100 * (cigl.accuracy.mean - rigl.accuracy.mean);
    const [small, large] = [Math.min(...paperEce.map(Math.abs)), Math.max(...paperEce.map(Math.abs))];
    const eceSameDirection = eceChange === undefined ? undefined : paperEce.every((v) => sign(v) === sign(eceChange));
    const eceSameSize = eceChange === undefined ? undefined : eceSameDirection! && Math.abs(eceChange) >= small / 2 && Math.abs(eceChange) <= 2 * large;
    const accuracySameDirection = sign(accuracyChange) === sign(paperAccuracy);
    const accuracySameSize = accuracySameDirection && Math.abs(accuracyChange) >= Math.abs(paperAccuracy) / 2 && Math.abs(accuracyChange) <= 2 * Math.abs(paperAccuracy);
    const at = `${Number((sparsity * 100).toFixed(2))}%`;
    const paperText = `the paper's CigL changes ECE by ${percent(paperEce[0])} (ResNet-50) and ${percent(paperEce[1])} (WRN-22-2) and accuracy by ${points(paperAccuracy)} (ResNet-50)`;
    const oursText =
      eceChange === undefined
        ? `here the ECE change cannot be computed (no ECE with ${bins} bins), accuracy ${points(accuracyChange)}`
        : `here ${percent(eceChange)} (${describeDifference(c!, r!, 4)}) and ${points(accuracyChange)} (${describeDifference(cigl.accuracy, rigl.accuracy, 2, 100, ' points')})`;
    const verdict = (direction: boolean | undefined, size: boolean | undefined) =>
      direction === undefined ? 'cannot be compared' : !direction ? '**opposite direction**' : size ? '**same direction, same size**' : '**same direction, different size**';
    const statement = `At ${at}: ${paperText}; ${oursText}. ECE: ${verdict(eceSameDirection, eceSameSize)}; accuracy: ${verdict(accuracySameDirection, accuracySameSize)}.`;
    return [{ sparsity, paper: { eceChange: paperEce, accuracyChange: paperAccuracy }, ours: { eceChange, accuracyChange }, eceSameDirection, eceSameSize, accuracySameDirection, accuracySameSize, statement }];
  });
}

/** The paper's table with this sweep's rows beside it (mean ± sd over seeds), and the relative ECE change. */
export function paperTable(groups: readonly ComparisonGroup[], bins: string, ourSource: string): string {
  const rows: string[][] = [];
  PAPER_TABLE3.sparsities.forEach((sparsity, i) => {
    const p = PAPER_TABLE3.resnet50;
    rows.push([`${sparsity * 100}%`, 'paper, ResNet-50', p.rigl.accuracy[i].toFixed(2), p.cigl.accuracy[i].toFixed(2), p.rigl.ece[i].toFixed(4), p.cigl.ece[i].toFixed(4), percent(relative(p.cigl.ece[i], p.rigl.ece[i]))]);
    const w = PAPER_TABLE3.wrn22x2;
    rows.push(['', 'paper, WRN-22-2', '', '', w.rigl.ece[i].toFixed(4), w.cigl.ece[i].toFixed(4), percent(relative(w.cigl.ece[i], w.rigl.ece[i]))]);
    const density = Number((1 - sparsity).toFixed(6));
    const r = groupAt(groups, 'rigl', density)?.headline;
    const c = groupAt(groups, 'cigl', density)?.headline;
    if (r || c) {
      rows.push([
        '',
        ourSource,
        r ? formatStats(r.accuracy, 2, 100) : '–',
        c ? formatStats(c.accuracy, 2, 100) : '–',
        r?.ece[bins] ? formatStats(r.ece[bins], 4) : '–',
        c?.ece[bins] ? formatStats(c.ece[bins], 4) : '–',
        r?.ece[bins] && c?.ece[bins] ? percent(relative(c.ece[bins].mean, r.ece[bins].mean)) : '–',
      ]);
    }
  });
  return formatTable(['Sparsity', 'Source', 'RigL acc. (%)', 'CigL acc. (%)', 'RigL ECE', 'CigL ECE', 'CigL vs RigL ECE'], rows, 'markdown', ['l', 'l', 'r', 'r', 'r', 'r', 'r']);
}
