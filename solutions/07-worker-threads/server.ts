// Lesson 7: worker threads.
//
// One process and no cluster. The main thread answers every request, and /heavy's CPU
// work runs on a fixed pool of config.workers threads from node:worker_threads: each has
// an event loop and a heap of its own, inside this one process. While they compute, the
// main thread stays free for /light. Requests beyond the threads wait in a queue.
// This file runs on the main thread and, with isMainThread false, in every thread of the
// pool, as lesson 2's ran as the primary and in every worker.
import http from 'node:http';
import { isMainThread, parentPort, threadId, type Worker } from 'node:worker_threads';
import { readConfig } from '../../common/config.ts';
import { computeHeavy } from '../../common/heavy.ts';
import { injectThreadFaults } from '../../common/faults.ts';
import { sendJson } from '../../common/respond.ts';
import { startThread } from '../../common/thread.ts';

const config = readConfig();

// What the main thread posts to a thread, and what the thread posts back: READY once it
// listens for jobs, then one Done for each job.
type Job = 'heavy' | 'crash';
const READY = 'ready';
interface Done {
  thread: number;
  result: string;
}

interface Task {
  job: Job;
  resolve: (done: Done) => void;
  reject: (error: Error) => void;
}

class ThreadPool {
  private readonly idle: Worker[] = [];
  private readonly queue: Task[] = [];
  // The task each busy thread is running.
  private readonly running = new Map<Worker, Task>();

  constructor(size: number) {
    // TODO (1): Start `size` threads with addThread().
    for (let i = 0; i < size; i++) this.addThread();
  }

  run(job: Job): Promise<Done> {
    // TODO (3): Queue every job, then dispatch(): a request that finds every thread busy
    // waits its turn; it is never turned away.
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    // TODO (4): While a thread is idle and a task waits, give the first task to that
    // thread: note it in `running` and post its job with worker.postMessage().
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop()!;
      const task = this.queue.shift()!;
      this.running.set(worker, task);
      worker.postMessage(task.job);
    }
  }

  private addThread(): void {
    const worker = startThread(new URL(import.meta.url));
    let isReady = false;
    // TODO (2): On 'message', a thread is idle: READY when it starts, then after each Done,
    // which also resolves the thread's task. Then dispatch().
    worker.on('message', (message: typeof READY | Done) => {
      if (message === READY) isReady = true;
      else this.running.get(worker)?.resolve(message);
      this.running.delete(worker);
      this.idle.push(worker);
      this.dispatch();
    });
    // TODO (5): On 'error', an exception the thread did not catch: reject its task, so
    // that request gets a 500. With no 'error' listener, the main thread throws it.
    worker.on('error', (error) => {
      console.error(`thread ${worker.threadId} failed: ${error.message}`);
      this.running.get(worker)?.reject(error);
      this.running.delete(worker);
    });
    // TODO (6): On 'exit', forget the thread and start another in its place. One that
    // exited before it was ready would fail again: give up rather than start threads forever
    // (print "giving up" and exit non-zero, so whatever runs the server sees it failed).
    worker.on('exit', (code) => {
      this.running.get(worker)?.reject(new Error(`thread ${worker.threadId} exited with code ${code}`));
      this.running.delete(worker);
      const idleAt = this.idle.indexOf(worker);
      if (idleAt !== -1) this.idle.splice(idleAt, 1);
      if (!isReady) {
        console.error(`thread ${worker.threadId} exited before it was ready: giving up`);
        process.exit(1);
      }
      this.addThread();
    });
  }
}

if (isMainThread) {
  const pool = new ThreadPool(config.workers);
  const server = http.createServer(async (req, res) => {
    if (req.url === '/heavy' || req.url === '/crash') {
      try {
        const done = await pool.run(req.url === '/heavy' ? 'heavy' : 'crash');
        sendJson(res, 200, { pid: process.pid, thread: done.thread, result: done.result });
      } catch (error) {
        sendJson(res, 500, { error: (error as Error).message });
      }
      return;
    }
    if (req.url === '/light') {
      sendJson(res, 200, { pid: process.pid });
      return;
    }
    sendJson(res, 404, { error: `no route for ${req.url}` });
  });
  server.listen(config.port, config.host, () => {
    console.log(`server ${process.pid} ready: ${config.workers} threads at http://${config.host}:${config.port}`);
  });
} else {
  injectThreadFaults();
  parentPort!.on('message', (job: Job) => {
    if (job === 'crash') {
      // Thrown later, outside this handler, as a real bug would be: uncaught in this thread.
      setTimeout(() => {
        throw new Error(`/crash requested on thread ${threadId}`);
      });
      return;
    }
    parentPort!.postMessage({ thread: threadId, result: computeHeavy(config.heavyRounds) } satisfies Done);
  });
  parentPort!.postMessage(READY);
}
