import * as path from 'node:path';
import { EventEmitter } from 'node:events';
import t from 'tap';
import { firstValueFrom } from 'rxjs';
import { exitCodeAfter, exitCodeOfStop } from '../../src/cli/exit-codes';
import { installGracefulStop } from '../../src/cli/signals';
import { spawnNode } from '../helpers/child-process';

const script = path.join(__dirname, 'children', 'graceful-loop.js');

t.test('first signal requests a stop, the second exits with 128 + its number', async (t) => {
  const target = new EventEmitter();
  const exits: number[] = [];
  const logs: string[] = [];
  const stop = installGracefulStop({ target, exit: (code) => exits.push(code), log: (m) => logs.push(m) });
  t.equal(stop.signal.aborted, false);
  t.equal(target.listenerCount('SIGINT'), 1);
  target.emit('SIGTERM');
  t.equal(stop.signal.aborted, true);
  t.equal(stop.signal.reason, 'SIGTERM');
  t.equal(await firstValueFrom(stop.requested$), 'SIGTERM', 'late subscribers still see the request');
  t.same(exits, []);
  t.match(logs[0], /SIGTERM: stopping after the current step.*send it again to exit at once/);
  target.emit('SIGINT');
  t.same(exits, [130], 'a second SIGINT exits with 130');
  t.equal(exitCodeAfter('SIGTERM'), 143);
  t.equal(exitCodeOfStop('SIGTERM'), 143, 'a stop asked by SIGTERM exits with 143');
  t.equal(exitCodeOfStop('SIGINT'), 130);
  stop.dispose();
  t.equal(target.listenerCount('SIGINT'), 0);
  t.equal(target.listenerCount('SIGTERM'), 0);
});

t.test('a real SIGINT lets the loop finish its step, checkpoint and exit 130', async (t) => {
  const child = spawnNode(script, []);
  await child.waitForLine((l) => l === 'ready');
  child.process.kill('SIGINT');
  const r = await child.exited;
  t.equal(r.code, 130, r.stderr);
  t.match(r.stdout, /log SIGINT: stopping after the current step/);
  t.match(r.stdout, /checkpoint at \d+ \(SIGINT\)/);
});

t.test('a second real signal exits at once with 130', async (t) => {
  const child = spawnNode(script, ['stubborn']);
  await child.waitForLine((l) => l === 'ready');
  child.process.kill('SIGTERM');
  await child.waitForLine((l) => l.startsWith('log SIGTERM: stopping'));
  child.process.kill('SIGINT');
  const r = await child.exited;
  t.equal(r.code, 130);
  t.match(r.stdout, /log SIGINT again: exiting now without a checkpoint/);
  t.notMatch(r.stdout, /checkpoint at/);
});
