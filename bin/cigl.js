#!/usr/bin/env node
'use strict';
// The `cigl` command. The TypeScript sources compile to dist/ (npm run build).
let cli;
try {
  cli = require('../dist/src/cli/main.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('cigl: not built yet; run `npm run build` first\n');
    process.exit(1);
  }
  throw err;
}
cli.runCli();
