#!/usr/bin/env node
// Writes dist/config.schema.json, the JSON Schema of a cigl config file, from the compiled config
// declaration (src/config/config.ts): run after tsc by `npm run build`; published with the package.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { configJsonSchema } = require('../dist/src/config/config.js');
const file = path.join(__dirname, '..', 'dist', 'config.schema.json');
fs.writeFileSync(file, JSON.stringify(configJsonSchema(), null, 2) + '\n');
