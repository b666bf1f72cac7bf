import * as path from 'node:path';
import type { CommandSpec } from '../command';
import { UsageError } from '../usage-error';
import { FETCHABLE_DATASETS, type CliWiring } from '../wiring';

/** `cigl data fetch DATASET`: download an official data set archive through the data module. */
export function dataCommand(wiring: CliWiring): CommandSpec {
  return {
    name: 'data',
    summary: 'download data sets (cigl data fetch cifar10|cifar100)',
    usage: ['data fetch DATASET [--dest DIR] [--url URL] [--force]'],
    description: `Downloads the official archive of DATASET (${FETCHABLE_DATASETS.join(', ')}), verifies its checksum and\nresumes an interrupted download.`,
    positionals: ['fetch', 'DATASET'],
    options: {
      dest: { type: 'string', value: 'DIR', description: 'where to put the data (default: the data cache)' },
      url: { type: 'string', value: 'URL', description: 'download from this mirror instead of the official URL' },
      force: { type: 'boolean', description: 'download again even if a verified copy exists' },
    },
    epilog: 'Example:\n  cigl data fetch cifar10 --dest data/',
    async run(args, io) {
      const [sub, dataset, ...extra] = args.positionals;
      if (sub === undefined) throw new UsageError('missing subcommand: cigl data fetch DATASET');
      if (sub !== 'fetch') throw new UsageError(`unknown subcommand ${JSON.stringify(sub)} (known: fetch)`);
      if (dataset === undefined) throw new UsageError(`missing DATASET: one of ${FETCHABLE_DATASETS.join(', ')}`);
      if (!(FETCHABLE_DATASETS as readonly string[]).includes(dataset)) {
        throw new UsageError(`unknown data set ${JSON.stringify(dataset)} (known: ${FETCHABLE_DATASETS.join(', ')})`);
      }
      if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
      const url = args.values.url as string | undefined;
      if (url !== undefined && !/^(https?|file):\/\//.test(url)) throw new UsageError(`--url must be an http(s):// or file:// URL; got ${JSON.stringify(url)}`);
      const dest = args.values.dest as string | undefined;
      const result = await wiring.fetchDataset(
        { dataset, dest: dest === undefined ? undefined : path.resolve(io.cwd, dest), url, force: args.values.force === true },
        io,
      );
      io.stdout.write(`${dataset}: ${result.path}\n`);
      return 0;
    },
  };
}
