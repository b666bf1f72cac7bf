import * as path from 'node:path';
import type { CommandSpec } from '../command';
import { formatLayerTable, formatResultsTable } from '../../report/summary-table';
import type { CliWiring, EvalRequest } from '../wiring';
import { BACKEND_PREFERENCES } from '../../compute/backend';
import { DATA_FORMATS, parseBackend, parseChoice, parseIntList, parseModelDir, parsePositiveInt, SPLITS } from './values';

/** `cigl eval`: evaluate a saved model and print its calibration table. */
export function evalCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'eval',
    summary: 'evaluate a saved model: accuracy, ECE and the calibration table',
    usage: ['eval --model DIR [--data PATH] [--split test] [--bins 15,10]'],
    options: {
      model: { type: 'string', short: 'm', value: 'DIR', description: 'model directory (model.json + weights), e.g. runs/NAME/model' },
      data: { type: 'string', value: 'PATH', description: 'data set to evaluate on (default: the one the model was trained on)' },
      format: { type: 'string', value: 'FORMAT', description: `data format: ${DATA_FORMATS.join('|')} (default auto)` },
      split: { type: 'string', value: 'SPLIT', description: `${SPLITS.join('|')} (default test)` },
      bins: { type: 'string', value: 'N,N', description: 'ECE bin counts (default 15,10)' },
      'batch-size': { type: 'string', value: 'N', description: 'images per forward pass (default 256)' },
      backend: { type: 'string', value: 'NAME', description: `compute path: ${BACKEND_PREFERENCES.join('|')} (default auto: tfjs-node, else the native addon, else stock tfjs)` },
      markdown: { type: 'boolean', description: 'print the tables as Markdown' },
    },
    epilog: 'Example:\n  cigl eval --model runs/my-run/model --split test',
    async run(args, io) {
      const modelDir = parseModelDir(args.values.model, io.cwd);
      const data = args.values.data as string | undefined;
      const request: EvalRequest = {
        modelDir,
        dataPath: data === undefined ? undefined : path.resolve(io.cwd, data),
        dataFormat: parseChoice(args.values.format, '--format', DATA_FORMATS, 'auto'),
        split: parseChoice(args.values.split, '--split', SPLITS, 'test'),
        bins: parseIntList(args.values.bins as string | undefined, '--bins', 2) ?? [15, 10],
        batchSize: parsePositiveInt(args.values['batch-size'] as string | undefined, '--batch-size') ?? 256,
        backend: parseBackend(args.values.backend),
      };
      const report = await wiring.evaluate(request, io);
      const format_ = args.values.markdown ? 'markdown' : 'text';
      io.stdout.write(`Results on the ${report.split} split\n` + formatResultsTable(report.results, format_));
      if (report.layers || report.density) io.stdout.write('\nPer-layer density\n' + formatLayerTable(report.layers ?? [], format_, report.density));
      return 0;
    },
  };
}
