// node tmp/forktime.mjs tsx|native : fork a lesson-1 server worker N times; fork -> listening ms, worker RSS
import cluster from 'node:cluster';
import fs from 'node:fs';
const mode = process.argv[2];
const execArgv = mode === 'tsx' ? ['--import', 'tsx', '--disable-warning=DEP0060'] : ['--disable-warning=DEP0060'];
cluster.setupPrimary({ exec: 'solutions/01-blocking-server/server.ts', execArgv, silent: true });
const times = [], rss = [];
for (let i = 0; i < 7; i++) {
  const t0 = performance.now();
  const w = cluster.fork({ PORT: String(40000 + i), HOST: '127.0.0.1' });
  await new Promise((r) => w.once('listening', r));
  times.push(performance.now() - t0);
  const status = fs.readFileSync(`/proc/${w.process.pid}/status`, 'utf8');
  rss.push(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024);
  w.process.kill('SIGKILL');
  await new Promise((r) => w.once('exit', r));
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
console.log(process.version, mode, 'fork->listening median', med(times).toFixed(0), 'ms', times.map((t) => t.toFixed(0)).join(' '), '| RSS median', med(rss).toFixed(1), 'MB');
process.exit(0);
