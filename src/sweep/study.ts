import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../sinks/atomic-file';
import { copySweepArtefacts, readSweepArtefacts, type SweepArtefacts } from './artefacts';
import { SWEEP_RECORD } from './record';
import { trainingCurvesPng, trainingCurvesSvg } from './training-curves';

/**
 * The reproduction study: up to four sweeps, each made by `cigl sweep --preset NAME`, any of which may be
 * missing (not run yet) or partly finished:
 *
 * - `pilot`: the over-fitting pilot (a dense run trained with train.testEveryEpoch), whose training
 *   curves show whether the budget reaches the over-fit regime;
 * - `pSweep`: CigL's random-mask rate p on the validation split;
 * - `main`: dense, RigL and CigL in that regime (the claims, ECE vs sparsity, the ablations);
 * - `second`: a second, paper-like setting (resnet20 with augmentation).
 *
 * With an assets folder, each sweep's small artefacts are copied to `<assets>/<sweep folder name>` (see
 * artefacts.ts) and the report is built from the copies; the pilot's copied runs get their training-curve
 * figure there. A sweep folder that does not exist (e.g. in a fresh clone, where runs/ is empty) is read
 * from its earlier copy in the assets folder when there is one, so that the committed copies regenerate
 * the committed report.
 */
export const STUDY_PARTS = ['pilot', 'pSweep', 'main', 'second'] as const;
export type StudyPart = (typeof STUDY_PARTS)[number];

/** A sweep the study names but that has no sweep.json (yet). */
export interface MissingSweep {
  /** Where its artefacts would be: the copy in the assets folder, else the sweep folder. */
  readonly dir: string;
  /** Why it is missing, without machine paths (the report shows it). */
  readonly missing: string;
}

export type StudySweep = SweepArtefacts | MissingSweep;
export type Study = Readonly<Partial<Record<StudyPart, StudySweep>>>;

export const TRAINING_CURVES = { svg: 'training-curves.svg', png: 'training-curves.png' } as const;

/** The sweep's artefacts, or undefined when it is missing or not part of the study. */
export function artefactsOf(sweep: StudySweep | undefined): SweepArtefacts | undefined {
  return sweep === undefined || 'missing' in sweep ? undefined : sweep;
}

/** Why a named sweep is missing; undefined when it is present or not part of the study. */
export function missingReason(sweep: StudySweep | undefined): string | undefined {
  return sweep !== undefined && 'missing' in sweep ? sweep.missing : undefined;
}

/** The sweeps `sources` names, copied to `assets` when given; `note` hears which copies stand in for missing sweeps. */
export async function loadStudy(sources: Partial<Record<StudyPart, string>>, assets?: string, note: (line: string) => void = () => {}): Promise<Study> {
  const copies = new Map<string, StudyPart>();
  const study: Partial<Record<StudyPart, StudySweep>> = {};
  for (const part of STUDY_PARTS) {
    const source = sources[part];
    if (source === undefined) continue;
    const hasRecord = (dir: string) => fs.existsSync(path.join(dir, SWEEP_RECORD));
    if (!assets) {
      study[part] = hasRecord(source) ? readSweepArtefacts(source) : { dir: source, missing: `not run yet (no ${SWEEP_RECORD})` };
      continue;
    }
    const copy = path.join(assets, path.basename(path.resolve(source)));
    const other = copies.get(path.resolve(copy));
    if (other) throw new Error(`${other} and ${part} would both be copied to ${copy}: give the sweeps folders of different names`);
    copies.set(path.resolve(copy), part);
    if (hasRecord(source)) {
      const copied = await copySweepArtefacts(source, copy);
      if (part === 'pilot') await writeTrainingCurves(copied);
      study[part] = copied;
    } else if (hasRecord(copy)) {
      note(`${source}: no ${SWEEP_RECORD}; the report uses the earlier copy in ${copy}`);
      study[part] = readSweepArtefacts(copy);
    } else {
      note(`${source}: no ${SWEEP_RECORD} and no earlier copy in ${copy}; the report says it has not run`);
      study[part] = { dir: copy, missing: `not run yet (no ${SWEEP_RECORD} in the sweep folder nor in its copy)` };
    }
  }
  return study;
}

/** Draws each run's training curves (from its per-epoch table) into its run folder. */
export async function writeTrainingCurves(sweep: SweepArtefacts): Promise<void> {
  for (const [runName, table] of sweep.epochs) {
    if (table.epochs.length === 0) continue;
    const title = `Training curves: ${runName}`;
    const dir = path.join(sweep.dir, runName);
    writeFileAtomic(path.join(dir, TRAINING_CURVES.svg), trainingCurvesSvg(table.epochs, { title }));
    writeFileAtomic(path.join(dir, TRAINING_CURVES.png), await trainingCurvesPng(table.epochs, { title }));
  }
}
