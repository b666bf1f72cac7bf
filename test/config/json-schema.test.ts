import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { configJsonSchema, describeConfigFields } from '../../src/config/config';
import { repoRoot } from '../../src/util/paths';

type Node = { properties?: Record<string, Node>; anyOf?: Node[]; default?: unknown; description?: string; additionalProperties?: unknown; type?: string; enum?: string[] };

/** The object schema of a (nullable) section. */
const objectOf = (node: Node): Node => node.anyOf?.find((n) => n.type === 'object') ?? node;

t.test('the published JSON Schema is the one the config declaration gives, and lists every field', async (t) => {
  const schema = configJsonSchema() as Node;
  const published = JSON.parse(fs.readFileSync(path.join(repoRoot, 'dist', 'config.schema.json'), 'utf8'));
  t.same(published, schema, 'dist/config.schema.json is written by the build from the declaration');
  t.equal(schema.additionalProperties, false, 'unknown sections are errors');
  const listed: string[] = [];
  for (const [key, node] of Object.entries(schema.properties!)) {
    const section = objectOf(node);
    if (section.properties) {
      t.equal(section.additionalProperties, false, `${key}: unknown fields are errors`);
      listed.push(...Object.keys(section.properties).map((f) => `${key}.${f}`));
    } else listed.push(key);
  }
  t.same(listed, describeConfigFields().map((f) => f.path), 'the same fields as --help, in the same order');
  const data = objectOf(schema.properties!.data).properties!;
  t.same(data.format.anyOf?.find((n) => n.enum)?.enum, ['auto', 'image-folder', 'cifar-binary', 'idx']);
  t.equal(data.batchSize.default, 128);
  t.equal(data.path.default, undefined, 'no machine path in the published schema');
  t.notOk(JSON.stringify(schema).includes(repoRoot), 'nothing of this checkout');
  t.match(objectOf(schema.properties!.optimiser).properties!.lr.description, /derived/);
});
