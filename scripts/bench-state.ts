// npm run bench:state: what it costs to keep a session outside the worker, for lesson 10's
// README. The same 2-worker cluster (scripts/lib/state-bench-server.ts) answers GET /me
// from a session kept in the worker's memory, in Redis, or in the primary (over IPC), in
// turns (memory, redis, primary, memory, ...), so a noisy neighbour weighs on all alike.
// Prints requests per second and p99 of each, and their ratio to memory's, and the CPU
// time the server side spent per request: on a machine of few cores the load's own client
// shares them, and the rates may differ less than the work each store costs.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { median } from './lib/checks.ts';
import { EXIT_FAIL, EXIT_PASS, UsageError } from './lib/errors.ts';
import { pidOf, send } from './lib/http.ts';
import { runLoad } from './lib/load.ts';
import { findFreePort } from './lib/ports.ts';
import { findRedis, INSTALL_REDIS, startRedis, type RedisServer } from './lib/redis-server.ts';
import { formatMs, formatRate } from './lib/report.ts';
import { processesCpuMs, startServer, type ServerProcess } from './lib/server-process.ts';

const USAGE = `Usage: npm run bench:state [-- --rounds N]

Starts a Redis of its own, then, for each place a session can live (the worker's memory,
Redis, the cluster's primary asked over IPC), a 2-worker cluster that keeps it there. It
logs in once with one session id until both workers hold it, warms up, and sends a closed
loop of GET /me with that session's cookie (concurrency 20, 10000 requests, keep-alive),
taking turns N times. Prints the median requests per second, p99 and server-side CPU time
per request (the cluster's processes and Redis's) of each, and their ratio to memory's.

Options:
  --rounds N  turns each store takes (default 3)
  --help      show this help`;

const SERVER_FILE = fileURLToPath(new URL('./lib/state-bench-server.ts', import.meta.url));
const STORES = ['memory', 'redis', 'primary'] as const;
const WORKERS = 2;
const CONCURRENCY = 20;
const WARMUP_REQUESTS = 200;
// Long enough (a second or two) that a moment's noise on the machine is a small part of it.
const REQUESTS = 10_000;
// Every load ends by itself, however slow the store.
const MAX_SECONDS = 15;
// Logins over fresh connections until every worker has answered one: the primary deals
// connections out in turn, so two or three do, but a busy machine may skew it.
const LOGIN_TRIES = 50;
// startServer returns once one worker listens; the other may still be booting.
const LISTEN_TIMEOUT_MS = 8_000;

interface Turn {
  requests: number;
  rps: number;
  p99Ms: number;
  errors: number;
}

interface Measured extends Turn {
  cpuUsPerRequest: number;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const { values } = parseCommandLine(args, { rounds: { type: 'string', default: '3' }, help: { type: 'boolean', default: false } });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds ${values.rounds}: give a whole number ≥ 1`, true);
  if (!findRedis()) {
    console.error(INSTALL_REDIS);
    return EXIT_FAIL;
  }
  const redis = await startRedis(await findFreePort());
  const turns = STORES.map((): Measured[] => []);
  try {
    for (let round = 0; round < rounds; round++) {
      for (const [i, store] of STORES.entries()) {
        const server = await startServer({ file: SERVER_FILE, env: { WORKERS: String(WORKERS), STATE_STORE: store, REDIS_URL: redis.url() } });
        try {
          const cookie = await logInEverywhere(server);
          await loadMe(server.url('/me'), cookie, WARMUP_REQUESTS);
          const cpuBefore = serverSideCpuMs(server, redis);
          const run = await loadMe(server.url('/me'), cookie, REQUESTS);
          turns[i].push({ ...run, cpuUsPerRequest: ((serverSideCpuMs(server, redis) - cpuBefore) * 1000) / run.requests });
        } finally {
          await server.stop();
        }
      }
    }
    const version = String(await redis.command(['INFO', 'server'])).match(/^redis_version:(\S+)/m)?.[1] ?? '?';
    console.log(`$ npm run bench:state${args.length ? ` -- ${args.join(' ')}` : ''}`);
    console.log(`Node ${process.version}, Redis ${version}, ${os.availableParallelism()} cores; WORKERS=${WORKERS}`);
    console.log(`GET /me, concurrency ${CONCURRENCY}, ${REQUESTS} requests, keep-alive, ${rounds} turns each, medians\n`);
    console.log('session in   rate         p99       CPU/req   failed  each turn (req/s)');
    const rates = turns.map((runs) => median(runs.map((run) => run.rps)));
    const p99s = turns.map((runs) => median(runs.map((run) => run.p99Ms)));
    const cpus = turns.map((runs) => median(runs.map((run) => run.cpuUsPerRequest)));
    for (const [i, store] of STORES.entries()) {
      const failed = turns[i].reduce((sum, run) => sum + run.errors, 0);
      const each = turns[i].map((run) => Math.round(run.rps)).join(', ');
      console.log(`${store.padEnd(12)} ${formatRate(rates[i]).padEnd(12)} ${formatMs(p99s[i]).padEnd(9)} ${`${Math.round(cpus[i])} µs`.padEnd(9)} ${String(failed).padEnd(7)} ${each}`);
    }
    console.log('');
    for (const [i, store] of STORES.entries()) {
      if (i === 0) continue;
      console.log(`${store}: ${(rates[i] / rates[0]).toFixed(2)}× memory's requests per second, ${(p99s[i] / p99s[0]).toFixed(2)}× its p99, ${(cpus[i] / cpus[0]).toFixed(2)}× its CPU per request`);
    }
  } finally {
    await redis.stop();
  }
  return EXIT_PASS;
}

// Logs in with one id, over a fresh connection each time, until every worker holds the
// session: the memory store then knows it wherever the load lands. The other stores go
// through the same steps, so all three start alike.
async function logInEverywhere(server: ServerProcess): Promise<string> {
  if (!(await server.waitForOutput(/all \d+ workers listening/, LISTEN_TIMEOUT_MS))) throw new Error(`not all ${WORKERS} workers listened within ${LISTEN_TIMEOUT_MS / 1000} s`);
  const id = randomBytes(18).toString('base64url');
  const holders = new Set<number>();
  for (let i = 0; i < LOGIN_TRIES && holders.size < WORKERS; i++) {
    const answer = await send('POST', server.url('/login'), undefined, false, { 'x-session-id': id });
    if (answer.status !== 200) throw new Error(`POST /login answered ${answer.status}: ${answer.body}`);
    const pid = pidOf(answer);
    if (pid !== undefined) holders.add(pid);
  }
  if (holders.size < WORKERS) throw new Error(`after ${LOGIN_TRIES} logins, ${holders.size} of ${WORKERS} workers hold the session`);
  return `sid=${id}`;
}

// A bounded closed loop with the cookie on every request. An answer of 400 or more (a 401
// for an unknown session, a 503 from a store too slow) counts as failed.
async function loadMe(url: string, cookie: string, requests: number): Promise<Turn> {
  const load = await runLoad({ url, requests, concurrency: CONCURRENCY, maxSeconds: MAX_SECONDS, keepAlive: true, headers: { cookie } });
  return { requests: load.requests, rps: load.rps, p99Ms: load.p99Ms, errors: load.errors };
}


// CPU time used so far by the cluster's processes and by Redis (idle but for the redis store).
function serverSideCpuMs(server: ServerProcess, redis: RedisServer): number {
  return server.cpuMs() + processesCpuMs(redis.pid === undefined ? [] : [redis.pid]);
}

runCommand(USAGE, main);
