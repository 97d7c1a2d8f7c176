// Imported into a cluster by lesson 6's checks (node --import): the primary writes to
// stderr each signal it sends a worker (child.kill() or process.kill()), each
// worker.kill() and worker.disconnect() it calls, and when a worker has sent it
// HEARTBEAT_LIKE messages, so that a check can tell what the primary tried against a
// hung worker: nothing, SIGTERM, a disconnect, or SIGKILL. (Only ever imported that way:
// a check reads what it wrote with spy-events.ts.)
import { ChildProcess } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import { writeSync } from 'node:fs';
import { SPY_PREFIX } from './spy-events.ts';

// Messages from one worker before the spy says the worker reports regularly.
const HEARTBEAT_LIKE = 3;

if (cluster.isPrimary) {
  const started = performance.now();
  const say = (line: string) => writeSync(2, `${SPY_PREFIX} ${line} at=${Math.round(performance.now() - started)}\n`);
  const kill = ChildProcess.prototype.kill;
  ChildProcess.prototype.kill = function (this: ChildProcess, signal?: NodeJS.Signals | number) {
    if (signal !== 0) say(`signal=${signal ?? 'SIGTERM'} pid=${this.pid}`);
    return kill.call(this, signal);
  };
  const processKill = process.kill;
  process.kill = function (pid: number, signal?: NodeJS.Signals | number) {
    if (pid !== process.pid && signal !== 0) say(`signal=${signal ?? 'SIGTERM'} pid=${pid}`);
    return processKill.call(process, pid, signal);
  } as typeof process.kill;
  // Node's cluster exports its Worker class at run time; @types/node does not declare it.
  const { prototype } = (cluster as unknown as { Worker: { prototype: Worker } }).Worker;
  const workerKill = prototype.kill;
  prototype.kill = function (this: Worker, signal?: string) {
    say(`kill pid=${this.process.pid}`);
    return workerKill.call(this, signal);
  };
  const disconnect = prototype.disconnect;
  prototype.disconnect = function (this: Worker) {
    say(`disconnect pid=${this.process.pid}`);
    return disconnect.call(this);
  };
  const messages = new Map<number, number>();
  cluster.on('message', (worker) => {
    const pid = worker.process.pid!;
    const count = (messages.get(pid) ?? 0) + 1;
    messages.set(pid, count);
    if (count === HEARTBEAT_LIKE) say(`messages pid=${pid}`);
  });
}
