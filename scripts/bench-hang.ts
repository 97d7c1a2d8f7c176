// npm run bench:hang: what one hung worker costs clients, with lesson 6's heartbeat and
// without it (the lesson's starter: the lesson-5 cluster as modules, with no watchdog).
// A steady /light load runs while one worker takes a /hang; the bench prints the
// requests that failed or were slow, and when the hung worker was gone and the pool
// whole again.
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { collectPids, referenceFile, startFile } from './lib/checks.ts';
import { get } from './lib/http.ts';
import { runLoad } from './lib/load.ts';
import { REPO_ROOT } from './lib/paths.ts';
import { formatMs } from './lib/report.ts';
import type { ServerProcess } from './lib/server-process.ts';

const USAGE = `Usage: npm run bench:hang [-- --timeout MS]

Runs the lesson-6 solution (a heartbeat watchdog) and the lesson-6 starter (none),
each with 2 workers, under an open loop of 50 GET /light a second for 8 s, each over
a fresh connection, as new visitors come. One second in, one
worker takes a GET /hang, and 2.5 s later another. Prints the requests that failed (no answer within 5 s, or a
reset) and those answered after more than 1 s, and, for the first hang, when the hung worker was gone and 2 workers served again.

Options:
  --timeout MS  HANG_TIMEOUT_MS for both servers (default 1500)
  --help        show this help`;

const SERVERS = [
  { name: 'heartbeat', file: referenceFile('06-hung-workers') },
  { name: 'none', file: path.join(REPO_ROOT, 'starters', '06-hung-workers', 'server.ts') },
];
const WORKERS = 2;
const LOAD = { rps: 50, seconds: 8, concurrency: 10, timeoutMs: 5_000 };
// One hang, then another on whichever worker takes it: without a watchdog, 2 hung workers
// of 2 are the whole pool.
const HANGS_AT_MS = [1_000, 3_500];
const SLOW_MS = 1_000;
const POLL_INTERVAL_MS = 50;

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), {
    timeout: { type: 'string', default: '1500' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const hangTimeoutMs = Number(values.timeout);
  if (!Number.isInteger(hangTimeoutMs) || hangTimeoutMs < 1) throw new UsageError(`--timeout ${values.timeout}: give a whole number of milliseconds`, true);
  console.log(`WORKERS=${WORKERS}, HANG_TIMEOUT_MS=${hangTimeoutMs}; ${LOAD.rps} GET /light a second for ${LOAD.seconds} s, a /hang at ${HANGS_AT_MS.map((ms) => ms / 1000).join(' s and ')} s\n`);
  console.log('watchdog   failed      slow      slowest    hung worker gone  2 workers again');
  for (const server of SERVERS) {
    const cluster = await startFile(server.file, { WORKERS: String(WORKERS), HANG_TIMEOUT_MS: String(hangTimeoutMs) });
    try {
      const workers = [...(await collectPids(cluster, WORKERS, 5_000, 0))];
      let slow = 0;
      const load = runLoad({
        url: cluster.url('/light'),
        requests: LOAD.rps * LOAD.seconds,
        rps: LOAD.rps,
        concurrency: LOAD.concurrency,
        timeoutMs: LOAD.timeoutMs,
        maxSeconds: LOAD.seconds + LOAD.timeoutMs / 1000 + 2,
        onOutcome: (error, _body, ms) => {
          if (!error && ms !== undefined && ms > SLOW_MS) slow += 1;
        },
      });
      await sleep(HANGS_AT_MS[0]);
      const hangSent = performance.now();
      const hangs = [get(cluster.url('/hang'), LOAD.seconds * 1000).catch(() => undefined)];
      const watch = watchPool(cluster, workers, hangSent, HANGS_AT_MS[1] - HANGS_AT_MS[0]);
      await sleep(HANGS_AT_MS[1] - HANGS_AT_MS[0]);
      hangs.push(get(cluster.url('/hang'), LOAD.seconds * 1000).catch(() => undefined));
      const [summary, pool] = await Promise.all([load, watch]);
      await Promise.all(hangs);
      console.log(
        `${server.name.padEnd(10)} ${`${summary.errors} of ${summary.requests}`.padEnd(11)} ${String(slow).padEnd(9)} ${formatMs(summary.maxMs).padEnd(10)} ${(pool.goneMs === undefined ? 'never' : `${formatMs(pool.goneMs)}`).padEnd(17)} ${pool.wholeMs === undefined ? 'never' : formatMs(pool.wholeMs)}`,
      );
    } finally {
      await cluster.stop();
    }
  }
  console.log(`\nTimes are from the first /hang. A failed request got no answer within ${LOAD.timeoutMs / 1000} s, or its connection was reset.`);
  return EXIT_PASS;
}

// When the first of `workers` left the process table, and when WORKERS workers ran again
// with a new one among them.
async function watchPool(cluster: ServerProcess, workers: number[], since: number, timeoutMs: number): Promise<{ goneMs?: number; wholeMs?: number }> {
  let goneMs: number | undefined;
  let wholeMs: number | undefined;
  while (performance.now() - since < timeoutMs && wholeMs === undefined) {
    const now = cluster.workerPids();
    if (goneMs === undefined && workers.some((pid) => !now.includes(pid))) goneMs = performance.now() - since;
    if (goneMs !== undefined && now.length === WORKERS && now.some((pid) => !workers.includes(pid))) wholeMs = performance.now() - since;
    await sleep(POLL_INTERVAL_MS);
  }
  return { goneMs, wholeMs };
}

runCommand(USAGE, main);
