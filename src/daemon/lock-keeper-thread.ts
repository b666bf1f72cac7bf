import { parentPort, workerData } from 'node:worker_threads';
import { Queue } from 'bullmq';
import type { LockKeeperCommand, LockKeeperOptions, LockKeeperReport } from './lock-keeper';
import { redisOptionsFromUrl } from './redis-connection';

/** The lock renewal thread of LockKeeper (lock-keeper.ts): extends every held lock each half lock duration. */
const options = workerData as LockKeeperOptions;
const port = parentPort!;
const queue = new Queue(options.queueName, { connection: redisOptionsFromUrl(options.url), prefix: options.prefix });
queue.on('error', () => undefined); // ioredis reconnects; commands wait for it
const held = new Map<string, string>();
let renewing = false;

const report = (message: LockKeeperReport) => port.postMessage(message);

async function renewAll(): Promise<void> {
  if (renewing) return; // Redis is slow or restarting: the commands in flight wait for it
  renewing = true;
  try {
    await Promise.all(
      [...held].map(async ([id, token]) => {
        try {
          const extended = await queue.backend.extendLock(id, token, options.lockDurationMs);
          if (!extended && held.get(id) === token) {
            held.delete(id);
            report({ lost: id });
          }
        } catch {
          // unreachable Redis: try again on the next tick (the lock may outlive a short outage)
        }
      }),
    );
  } finally {
    renewing = false;
  }
}

void queue.waitUntilReady().then(() => report({ ready: true }));
const timer = setInterval(() => void renewAll(), Math.max(50, options.lockDurationMs / 2));

port.on('message', (command: LockKeeperCommand) => {
  if ('hold' in command) held.set(command.hold.id, command.hold.token);
  else if ('release' in command) held.delete(command.release);
  else if ('close' in command) {
    clearInterval(timer);
    held.clear();
    void queue.close().finally(() => {
      report({ closed: true });
      port.close();
    });
  }
});
