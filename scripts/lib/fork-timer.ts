// Run by npm run bench:start under the Node being measured: forks the lesson-1 solution
// as a cluster worker, one at a time, and prints as JSON how long each took from fork to
// listening and its resident memory once listening. argv[2] is the worker's loader.
import cluster from 'node:cluster';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';
import { findFreePort } from './ports.ts';

const FORKS = 7;
const loader = process.argv[2] === 'tsx' ? ['--import', 'tsx'] : [];
cluster.setupPrimary({ exec: path.join(REPO_ROOT, 'solutions', '01-blocking-server', 'server.ts'), execArgv: [...loader, '--disable-warning=DEP0060'], silent: true });
const startMs: number[] = [];
const rssMb: number[] = [];
for (let fork = 0; fork < FORKS; fork++) {
  const port = await findFreePort();
  const started = performance.now();
  const worker = cluster.fork({ PORT: String(port), HOST: '127.0.0.1' });
  await once(worker, 'listening');
  startMs.push(performance.now() - started);
  const status = readFileSync(`/proc/${worker.process.pid}/status`, 'utf8');
  rssMb.push(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
  worker.process.kill('SIGKILL');
  await once(worker, 'exit');
}
console.log(JSON.stringify({ startMs, rssMb }));
