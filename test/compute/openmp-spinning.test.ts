import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { DEFAULT_GOMP_SPINCOUNT, defaultOpenMpSpinning } from '../../src/compute/openmp-spinning';
import { repoRoot } from '../../src/util/paths';
import { nativeUnavailable } from './compare';

t.test('GOMP_SPINCOUNT gets the default only when the user set neither OpenMP wait variable', async (t) => {
  const unset: NodeJS.ProcessEnv = {};
  defaultOpenMpSpinning(unset);
  t.equal(unset.GOMP_SPINCOUNT, DEFAULT_GOMP_SPINCOUNT);
  const own: NodeJS.ProcessEnv = { GOMP_SPINCOUNT: '777' };
  defaultOpenMpSpinning(own);
  t.equal(own.GOMP_SPINCOUNT, '777', "the user's spin count is kept");
  const policy: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: 'active' };
  defaultOpenMpSpinning(policy);
  t.same(policy, { OMP_WAIT_POLICY: 'active' }, 'a chosen wait policy is left alone');
});

// What libgomp itself read when the addon loaded it: OMP_DISPLAY_ENV=verbose prints its settings.
function spinCountSeenByLibgomp(script: string, env: NodeJS.ProcessEnv = {}): string | undefined {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'GOMP_SPINCOUNT' && k !== 'OMP_WAIT_POLICY'));
  const res = spawnSync(process.execPath, ['-e', script], { env: { ...clean, ...env, OMP_DISPLAY_ENV: 'verbose' }, encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`child failed: ${res.stderr}`);
  return /GOMP_SPINCOUNT = '(\d+)'/.exec(res.stderr)?.[1];
}

// Children run the built modules (npm run build), as the CLI does.
const addonModule = JSON.stringify(path.join(repoRoot, 'dist', 'src', 'compute', 'native-addon.js'));
const spinningModule = JSON.stringify(path.join(repoRoot, 'dist', 'src', 'compute', 'openmp-spinning.js'));
const loadInWorker = (callOnMainFirst: boolean) => `
  ${callOnMainFirst ? `require(${spinningModule}).defaultOpenMpSpinning();` : ''}
  const { Worker } = require('node:worker_threads');
  new Worker('const r = require(${addonModule.replace(/"/g, "\\'")}).loadNativeAddon(); if (!r.addon) throw new Error(r.error);', { eval: true });`;

t.test('libgomp reads the default when the addon loads, on the main thread and in a worker the main thread prepared', { skip: nativeUnavailable }, async (t) => {
  const load = `const r = require(${addonModule}).loadNativeAddon(); if (!r.addon) throw new Error(r.error);`;
  t.equal(spinCountSeenByLibgomp(load), DEFAULT_GOMP_SPINCOUNT, 'main thread');
  t.equal(spinCountSeenByLibgomp(load, { GOMP_SPINCOUNT: '777' }), '777', "the user's value");
  t.equal(spinCountSeenByLibgomp(loadInWorker(true)), DEFAULT_GOMP_SPINCOUNT, 'worker thread, main thread called first (as the daemon does)');
  // Why the daemon calls it on its main thread: a worker's process.env is a private copy.
  t.not(spinCountSeenByLibgomp(loadInWorker(false)), DEFAULT_GOMP_SPINCOUNT, "a worker alone cannot change libgomp's setting");
});
