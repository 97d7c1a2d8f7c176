// Lesson 1: a blocking server.
//
// One Node.js process serves every request on one thread. /heavy does CPU work on
// that thread, so while it runs nothing else can: not even /light, which has no
// work at all to do. Run it, load /heavy, and watch /light wait.
import http from 'node:http';
import { readConfig } from '../../common/config.ts';
import { computeHeavy } from '../../common/heavy.ts';
import { sendJson } from '../../common/respond.ts';

const config = readConfig();

const server = http.createServer((req, res) => {
  if (req.url === '/heavy') {
    // TODO: Answer 200 with { pid, result }: the result of computeHeavy(config.heavyRounds)
    // and the pid of the process that computed it (process.pid). Then return, or the 404
    // at the end answers the same request a second time.
  }
  if (req.url === '/light') {
    // TODO: Answer 200 with { pid } at once.
  }
  if (req.url === '/crash') {
    // TODO: Crash the process the way a real bug would: throw an Error from a callback
    // that runs later (setTimeout), so no try/catch around this handler can catch it.
  }
  sendJson(res, 404, { error: `no route for ${req.url}` });
});

server.listen(config.port, config.host, () => {
  console.log(`server ${process.pid} ready at http://${config.host}:${config.port}`);
});
