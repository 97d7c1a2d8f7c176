// Lesson 2: a basic cluster.
//
// The process you start becomes the primary. It serves nothing itself: it forks one
// worker per core, and each worker runs the lesson-1 server. The workers all listen
// on the same port; the primary accepts connections and hands them out in turn.
import cluster from 'node:cluster';
import http from 'node:http';
import { readConfig } from '../../common/config.ts';
import { computeHeavy } from '../../common/heavy.ts';
import { sendJson } from '../../common/respond.ts';

const config = readConfig();

if (cluster.isPrimary) {
  // TODO: Fork config.workers workers instead of serving from the primary. Use cluster.fork().
  for (let i = 0; i < config.workers; i++) {
    cluster.fork();
  }
  // TODO: Log each worker as it comes online. Use cluster.on('online', ...).
  cluster.on('online', (worker) => {
    console.log(`worker ${worker.process.pid} online`);
  });
  // TODO: Print one line with the word "ready" once every worker listens. Count cluster's
  // 'listening' events.
  let listening = 0;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === config.workers) {
      console.log(`primary ${process.pid} ready: ${config.workers} workers at http://${config.host}:${config.port}`);
    }
  });
  // TODO: Stop serving from the primary: only workers call startServer().
} else {
  startServer();
}

function startServer(): void {
  const server = http.createServer((req, res) => {
    if (req.url === '/heavy') {
      sendJson(res, 200, { pid: process.pid, result: computeHeavy(config.heavyRounds) });
      return;
    }
    if (req.url === '/light') {
      sendJson(res, 200, { pid: process.pid });
      return;
    }
    if (req.url === '/crash') {
      setTimeout(() => {
        throw new Error(`/crash requested on pid ${process.pid}`);
      });
      return;
    }
    sendJson(res, 404, { error: `no route for ${req.url}` });
  });

  server.listen(config.port, config.host);
}
