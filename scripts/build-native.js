#!/usr/bin/env node
// Builds the optional native compute addon (native/). A failed build is not an install failure:
// cigl then runs on stock tfjs and says so once at start-up (see src/compute/backend.ts).
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const nativeDir = path.join(root, 'native');
const verbose = process.argv.includes('--verbose');

if (!fs.existsSync(path.join(nativeDir, 'binding.gyp'))) process.exit(0);
if (process.env.CIGL_SKIP_NATIVE === '1') {
  console.log('cigl: CIGL_SKIP_NATIVE=1, native compute addon not built');
  process.exit(0);
}
const nodeGyp = path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = fs.existsSync(nodeGyp) ? [process.execPath, [nodeGyp]] : ['node-gyp', []];
// Use the headers installed next to this node (Debian's nodejs, official tarballs) instead of
// downloading them: CI and user machines may have no route to nodejs.org.
const prefix = path.resolve(path.dirname(process.execPath), '..');
const localHeaders = fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const res = spawnSync(gyp[0], [...gyp[1], 'rebuild', '--directory', nativeDir, '-j', 'max', ...localHeaders], {
  stdio: verbose ? 'inherit' : 'pipe',
  encoding: 'utf8',
});
if (res.status !== 0) {
  const tail = ((res.stdout || '') + (res.stderr || '')).split('\n').slice(-15).join('\n');
  console.warn(`cigl: native compute addon did not build (exit ${res.status}); stock tfjs will be used.\n${tail}`);
  if (verbose) process.exit(res.status ?? 1);
}
