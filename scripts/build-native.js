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
// A build made elsewhere for this same platform and Node (e.g. the checkout's, when a test installs the
// packed package next to it): copied instead of compiled, which takes minutes on a small machine.
const prebuilt = process.env.CIGL_NATIVE_PREBUILT;
if (prebuilt) {
  const target = path.join(nativeDir, 'build', 'Release', 'cigl_native.node');
  if (fs.existsSync(prebuilt)) {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(prebuilt, target);
    console.log(`cigl: native compute addon copied from ${prebuilt}`);
    process.exit(0);
  }
  console.warn(`cigl: CIGL_NATIVE_PREBUILT=${prebuilt} does not exist; building the addon instead`);
}
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
  const output = (res.stdout || '') + (res.stderr || '') + (res.error ? String(res.error) : '');
  // Say the likely cause in one line; the compiler's own words follow only with --verbose.
  const cause = /dnnl[\w.]*\.hpp: No such file|cannot find -ldnnl/.test(output)
    ? 'oneDNN was not found (install libdnnl-dev)'
    : /node_api\.h: No such file|gyp ERR! .*(connect|network|ENOTFOUND)/.test(output)
      ? 'the Node.js headers are missing and could not be downloaded'
      : /not found: make|not found: g\+\+|No such file or directory.*(c\+\+|g\+\+)|ENOENT/.test(output)
        ? 'no C++ toolchain (install g++ and make)'
        : `node-gyp exited with ${res.status}`;
  console.warn(`cigl: the native compute addon was not built: ${cause}. cigl will run on stock TensorFlow.js (much slower).` +
    (verbose ? '' : ' Details: npm run build:native'));
  if (verbose) process.exit(res.status ?? 1);
}
