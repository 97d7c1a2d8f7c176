// Starts a worker thread that runs a TypeScript file. `node --import tsx` teaches only
// the main thread to load .ts files (Node 20 runs no --import hooks in a Worker), so the
// thread loads tsx itself before it imports `file`. That makes a thread's start slower
// than plain JavaScript's: tsx compiles the file again in every thread.
import { Worker } from 'node:worker_threads';

export function startThread(file: URL): Worker {
  const bootstrap = `import('tsx/esm/api').then(({ tsImport }) => tsImport(${JSON.stringify(file.href)}, ${JSON.stringify(file.href)}))`;
  return new Worker(bootstrap, { eval: true });
}
