import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { parseRunCheckpointState } from '../../src/pipeline/checkpoint-state';
import { readSavedModelMetadata } from '../../src/predict/saved-model';
import { repoRoot } from '../../src/util/paths';

/** Files written by main's code before issue 18 (a study's checkpoint; a saved model's metadata). */
const dir = path.join(repoRoot, 'test', 'pipeline', 'main-format');
const json = (name: string) => JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'));

t.test("a checkpoint state main wrote passes today's schema unchanged", async (t) => {
  const written = json('checkpoint-state.json');
  const state = parseRunCheckpointState(written.state, 'step-0000000352');
  t.same(state, written.state, 'read as written: nothing dropped or added');
  t.equal(state.trainer.step, 352);
  t.equal(state.average, null);
  t.throws(() => parseRunCheckpointState({ ...written.state, trainer: { ...written.state.trainer, format: 'other' } }, 'step-1'), /checkpoint step-1: state field trainer\.format/);
  t.throws(() => parseRunCheckpointState({ ...written.state, next: undefined }, 'step-1'), /state field next/);
});

t.test("a saved model's metadata main wrote loads (it has no stage field)", async (t) => {
  const modelDir = t.testdir({ 'model.json': JSON.stringify({ userDefinedMetadata: json('model-metadata.json') }) });
  const metadata = readSavedModelMetadata(modelDir);
  t.equal(metadata.stage, undefined);
  t.equal(metadata.model, 'mlp');
  t.equal(metadata.classNames.length, 10);
  t.ok(metadata.temperature! > 0);
});
