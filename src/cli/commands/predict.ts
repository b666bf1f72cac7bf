import * as fs from 'node:fs';
import * as path from 'node:path';
import { lastValueFrom, reduce, tap } from 'rxjs';
import { BACKEND_PREFERENCES } from '../../compute/backend';
import type { Prediction } from '../../predict/predictor';
import { predictionJsonLine, predictionsArrow } from '../../predict/prediction-formats';
import { writeFileAtomic } from '../../sinks/atomic-file';
import type { CommandSpec, CliOutput } from '../command';
import { formatTable, type TableFormat } from '../../report/summary-table';
import { UsageError } from '../usage-error';
import type { CliWiring, PredictRequest } from '../wiring';
import { DATA_FORMATS, parseBackend, parseChoice, parseModelDir, parsePositiveInt, SPLITS } from './values';

const OUTPUT_FORMATS = ['table', 'markdown', 'jsonl', 'arrow'] as const;

/** `cigl predict`: calibrated class probabilities of a saved model for image files or a data set. */
export function predictCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'predict',
    summary: 'calibrated class probabilities of a saved model for images or a data set',
    usage: ['predict --model DIR FILE... [--top-k 3] [--abstain-below P] [--format table|jsonl|arrow] [--output FILE]', 'predict --model DIR --data PATH [--split test] [options above]'],
    description:
      'Applies the model as it was trained: each image normalised with the statistics stored with the model\n' +
      '(NHWC), the logits z of the saved weights, and the calibrated probabilities softmax(z / T) with the\n' +
      'temperature T fitted on the validation split. FILEs are JPEG or PNG images of the model\'s input size.\n' +
      'A prediction whose calibrated confidence is below --abstain-below is marked "abstain".',
    positionals: ['FILE...'],
    options: {
      model: { type: 'string', short: 'm', value: 'DIR', description: 'model directory (model.json + weights), e.g. runs/NAME/model' },
      data: { type: 'string', value: 'PATH', description: 'predict a data set split instead of FILEs' },
      'data-format': { type: 'string', value: 'FORMAT', description: `with --data: ${DATA_FORMATS.join('|')} (default auto)` },
      split: { type: 'string', value: 'SPLIT', description: `with --data: ${SPLITS.join('|')} (default test)` },
      'top-k': { type: 'string', value: 'N', description: 'classes listed per input, most probable first (default 3)' },
      'abstain-below': { type: 'string', value: 'P', description: 'mark predictions with calibrated confidence below P, in [0, 1] (default 0: never)' },
      format: { type: 'string', value: 'FORMAT', description: `output: ${OUTPUT_FORMATS.join('|')} (default table; arrow needs --output)` },
      output: { type: 'string', short: 'o', value: 'FILE', description: 'write the predictions to FILE instead of stdout' },
      'batch-size': { type: 'string', value: 'N', description: 'images per forward pass (default 256)' },
      backend: { type: 'string', value: 'NAME', description: `compute path: ${BACKEND_PREFERENCES.join('|')} (default auto)` },
    },
    epilog:
      'Examples:\n  cigl predict --model runs/my-run/model cat.png ship.jpg\n' +
      '  cigl predict --model runs/my-run/model --data fixtures/cifar10-subset --format jsonl --abstain-below 0.5\n' +
      '  cigl predict --model runs/my-run/model --data fixtures/cifar10-subset --format arrow --output predictions.arrow',
    async run(args, io) {
      const request = parseRequest(args.values, args.positionals, io.cwd);
      const format = parseChoice(args.values.format, '--format', OUTPUT_FORMATS, 'table');
      const output = args.values.output === undefined ? undefined : path.resolve(io.cwd, args.values.output as string);
      if (format === 'arrow' && !output) throw new UsageError('--format arrow needs --output FILE (Arrow is binary)');
      if (output && !fs.existsSync(path.dirname(output))) throw new UsageError(`--output ${String(args.values.output)}: folder ${path.dirname(output)} does not exist`);

      const run = await wiring.predict(request, io);
      const { classNames } = run;
      if (format === 'jsonl') {
        // Streamed: each batch is written as soon as it is computed.
        const sink = output ? fs.createWriteStream(output) : undefined;
        const out: CliOutput = sink ?? io.stdout;
        try {
          await lastValueFrom(run.batches.pipe(tap((batch) => out.write(batch.map((p) => `${predictionJsonLine(p, classNames)}\n`).join('')))), { defaultValue: undefined });
        } finally {
          if (sink) await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
        }
      } else {
        const predictions = await lastValueFrom(run.batches.pipe(reduce((all: Prediction[], batch) => all.concat(batch), [])));
        if (format === 'arrow') writeFileAtomic(output!, predictionsArrow(predictions, classNames));
        else {
          const text = formatPredictionTable(predictions, classNames, format === 'markdown' ? 'markdown' : 'text');
          if (output) writeFileAtomic(output, text);
          else io.stdout.write(text);
        }
      }
      io.stderr.write(`cigl predict: ${run.total} inputs, probabilities softmax(logits / ${run.temperature.toFixed(4)})${output ? `, written to ${output}` : ''}\n`);
      return 0;
    },
  };
}

/** One row per input: the predicted class, its calibrated confidence, the top-k, and the true class if known. */
export function formatPredictionTable(predictions: readonly Prediction[], classNames: readonly string[], format: TableFormat): string {
  const hasLabels = predictions.some((p) => p.label !== undefined);
  const anyAbstained = predictions.some((p) => p.abstained);
  const headers = ['Input', 'Class', 'Confidence', 'Top classes', ...(anyAbstained ? ['Abstain'] : []), ...(hasLabels ? ['True class'] : [])];
  const rows = predictions.map((p) => [
    p.input,
    p.className,
    p.confidence.toFixed(4),
    p.top.map((c) => `${c.className} ${c.probability.toFixed(3)}`).join(', '),
    ...(anyAbstained ? [p.abstained ? 'abstain' : ''] : []),
    ...(hasLabels ? [p.label === undefined ? '' : classNames[p.label]] : []),
  ]);
  return formatTable(headers, rows, format, ['l', 'l', 'r', 'l', 'l', 'l']);
}

function parseRequest(values: Readonly<Record<string, unknown>>, files: readonly string[], cwd: string): PredictRequest {
  const modelDir = parseModelDir(values.model, cwd);
  const data = values.data as string | undefined;
  if (files.length === 0 && data === undefined) throw new UsageError('give image FILEs or --data PATH');
  if (files.length > 0 && data !== undefined) throw new UsageError('give image FILEs or --data PATH, not both');
  for (const f of files) if (!fs.existsSync(path.resolve(cwd, f))) throw new UsageError(`${f}: no such file`);
  const abstainText = values['abstain-below'] as string | undefined;
  const abstainBelow = abstainText === undefined ? 0 : Number(abstainText);
  if (abstainText !== undefined && !(abstainText.trim() !== '' && abstainBelow >= 0 && abstainBelow <= 1)) {
    throw new UsageError(`--abstain-below must be a number in [0, 1]; got ${JSON.stringify(abstainText)}`);
  }
  return {
    modelDir,
    files,
    dataPath: data === undefined ? undefined : path.resolve(cwd, data),
    dataFormat: parseChoice(values['data-format'], '--data-format', DATA_FORMATS, 'auto'),
    split: parseChoice(values.split, '--split', SPLITS, 'test'),
    topK: parsePositiveInt(values['top-k'] as string | undefined, '--top-k') ?? 3,
    abstainBelow,
    batchSize: parsePositiveInt(values['batch-size'] as string | undefined, '--batch-size') ?? 256,
    backend: parseBackend(values.backend),
  };
}
