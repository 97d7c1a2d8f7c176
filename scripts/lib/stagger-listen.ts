// Imported into a cluster by lesson 2's ready-line check (node --import): worker N
// starts to listen N × LISTEN_STAGGER_MS after it calls listen(), so the workers of a
// primary that prints its ready line too early are seen not yet listening.
import cluster from 'node:cluster';
import net from 'node:net';

export const LISTEN_STAGGER_MS = 400;

if (cluster.isWorker) {
  const listen = net.Server.prototype.listen;
  const delayMs = cluster.worker!.id * LISTEN_STAGGER_MS;
  net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
    setTimeout(() => listen.apply(this, args as Parameters<typeof listen>), delayMs);
    return this;
  } as typeof listen;
}
