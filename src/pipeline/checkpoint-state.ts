import { z } from 'zod';
import { SnapshotMeanStateJsonSchema } from '../average/snapshot-mean';
import { TrainerStateJsonSchema } from '../train/trainer-state';

/**
 * What a run's checkpoint holds in its JSON part (state.json; its arrays, in checkpoint.bin, are
 * `trainer` and, when averaging, `average`). Checkpoints of earlier versions have the same form, so a
 * run they belong to resumes.
 */
export const RunCheckpointStateSchema = z.object({
  /** The hash of the config that wrote it: a resume checks it against its own. */
  configHash: z.string(),
  trainer: TrainerStateJsonSchema,
  average: SnapshotMeanStateJsonSchema.nullable(),
  /** The next batch to train. */
  next: z.object({ epoch: z.number().int().nonnegative(), index: z.number().int().nonnegative() }),
  /** Training wall time of the run so far. */
  wallTimeMs: z.number(),
});
export type RunCheckpointState = z.infer<typeof RunCheckpointStateSchema>;

/** A checkpoint's JSON part, checked; errors name the checkpoint and the field. */
export function parseRunCheckpointState(value: unknown, dir: string): RunCheckpointState {
  const parsed = RunCheckpointStateSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new Error(`checkpoint ${dir}: state field ${issue.path.join('.') || '(top level)'}: ${issue.message}`);
}
