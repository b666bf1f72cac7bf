#!/usr/bin/env node
// Run by `npm run build` after tsc: the files of the package that tsc does not write.
// - dist/config.schema.json: the JSON Schema of a config file, from the config declaration (src/config/config.ts);
// - dist/index.mjs and dist/index.d.mts: the ES module entry (`import … from 'cigl'`), the CommonJS API's
//   named exports re-exported, so that import and require give the same objects.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
const { configJsonSchema } = require(path.join(dist, 'src', 'config', 'config.js'));
fs.writeFileSync(path.join(dist, 'config.schema.json'), JSON.stringify(configJsonSchema(), null, 2) + '\n');

const api = require(path.join(dist, 'src', 'index.js'));
const names = Object.keys(api).filter((n) => n !== 'default' && n !== '__esModule').sort();
fs.writeFileSync(
  path.join(dist, 'index.mjs'),
  `// The ES module entry of cigl: the CommonJS API (dist/src/index.js) with its named exports.\n` +
    `import cigl from './src/index.js';\n\nexport const {\n${names.map((n) => `  ${n},`).join('\n')}\n} = cigl;\nexport default cigl;\n`,
);
fs.writeFileSync(path.join(dist, 'index.d.mts'), `export * from './src/index.js';\nimport * as cigl from './src/index.js';\nexport default cigl;\n`);
