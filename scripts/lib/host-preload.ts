// Imported into every process of a lesson-8 host (node --import, primary and workers):
// gives the host's http servers the keepAliveTimeout of the learner's balancer.ts
// (HOST_KEEP_ALIVE_TIMEOUT_MS in the environment), as the learner would set it in their
// own server, and prints a line for every connection
// a server accepts, with the address it came from, so the check can count them.
import http from 'node:http';

export const CONNECTION_LINE = 'host connection from';

const keepAliveTimeoutMs = Number(process.env.HOST_KEEP_ALIVE_TIMEOUT_MS);
const createServer = http.createServer;

http.createServer = function (this: unknown, ...args: unknown[]) {
  const server = (createServer as (...args: unknown[]) => http.Server).apply(this, args);
  if (keepAliveTimeoutMs > 0) server.keepAliveTimeout = keepAliveTimeoutMs;
  server.on('connection', (socket) => console.log(`${CONNECTION_LINE} ${socket.remoteAddress}`));
  return server;
} as typeof http.createServer;
