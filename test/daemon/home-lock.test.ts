import * as path from 'node:path';
import t from 'tap';
import { spawnNode } from '../helpers/child-process';
import { ciglBin } from '../helpers/tiny-run';
import { startTestDaemon, tempDir } from './client';

t.test('a second daemon on the same home is refused while the first runs', async (t) => {
  const home = path.join(tempDir('cigl-home-'), 'home');
  const first = await startTestDaemon({ home });
  t.teardown(() => first.stop());
  await t.rejects(startTestDaemon({ home }), /another daemon \(pid \d+\) is serving/);
  const exit = await spawnNode(ciglBin, ['daemon', '--home', home, '--port', '0']).exited;
  t.equal(exit.code, 1);
  t.match(exit.stderr, /another daemon \(pid \d+\) is serving/);
});
