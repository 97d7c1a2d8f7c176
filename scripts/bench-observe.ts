// npm run bench:observe: what lesson 9's metrics and a log line per request cost. The
// lesson-6 solution (the same cluster, with neither) against the lesson-9 solution, each
// with 2 workers, under a closed loop of /heavy and then of /light, in turns (A B A B),
// so a noisy neighbour weighs on both alike. Prints requests per second and p99.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { median, referenceFile, startFile } from './lib/checks.ts';
import { runLoad, type LoadSummary } from './lib/load.ts';
import { findFreePort } from './lib/ports.ts';
import { formatMs, formatRate } from './lib/report.ts';

const USAGE = `Usage: npm run bench:observe [-- --rounds N]

Runs the lesson-6 solution (no metrics, no log lines) and the lesson-9 solution (a
JSON line and an IPC message per request, counted by the primary), each with 2
workers, under a closed loop of GET /heavy (concurrency 4, 600 requests) and then of
GET /light (concurrency 10, 3000 requests), each over fresh connections, taking turns
N times. Prints the median requests per second and p99 of each, and the ratio.
The lesson-9 server's log lines go through a pipe to this command, as they would to a
log collector.

Options:
  --rounds N  turns each server takes (default 2)
  --help      show this help`;

const SERVERS = [
  { name: 'lesson 6 (neither)', file: referenceFile('06-hung-workers') },
  { name: 'lesson 9 (metrics, logs)', file: referenceFile('09-seeing-inside') },
];
const WORKERS = 2;
const LOADS = [
  { route: '/heavy', requests: 600, concurrency: 4, warmup: 40 },
  { route: '/light', requests: 3_000, concurrency: 10, warmup: 200 },
];
// The goal for /heavy: under 10 % slower.
const HEAVY_TARGET = 0.9;

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), { rounds: { type: 'string', default: '2' }, help: { type: 'boolean', default: false } });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds ${values.rounds}: give a whole number ≥ 1`, true);
  const results = SERVERS.map(() => LOADS.map((): LoadSummary[] => []));
  for (let round = 0; round < rounds; round++) {
    for (const [i, server] of SERVERS.entries()) {
      const cluster = await startFile(server.file, { WORKERS: String(WORKERS), METRICS_PORT: String(await findFreePort()) });
      try {
        for (const [j, load] of LOADS.entries()) {
          const url = cluster.url(load.route);
          await runLoad({ url, requests: load.warmup, concurrency: load.concurrency });
          results[i][j].push(await runLoad({ url, requests: load.requests, concurrency: load.concurrency }));
        }
      } finally {
        await cluster.stop();
      }
    }
  }
  console.log(`WORKERS=${WORKERS}, ${rounds} turns each, medians\n`);
  console.log('server                     route    rate      p99       failed');
  for (const [i, server] of SERVERS.entries()) {
    for (const [j, load] of LOADS.entries()) {
      const runs = results[i][j];
      const failed = runs.reduce((sum, run) => sum + run.errors, 0);
      console.log(`${server.name.padEnd(26)} ${load.route.padEnd(8)} ${formatRate(median(runs.map((run) => run.rps))).padEnd(9)} ${formatMs(median(runs.map((run) => run.p99Ms))).padEnd(9)} ${failed}`);
    }
  }
  console.log('');
  for (const [j, load] of LOADS.entries()) {
    const ratio = median(results[1][j].map((run) => run.rps)) / median(results[0][j].map((run) => run.rps));
    const goal = load.route === '/heavy' ? ` (goal: ≥ ${HEAVY_TARGET.toFixed(2)}×, ${ratio >= HEAVY_TARGET ? 'met' : 'missed'})` : ' (no goal: the fixed cost per request shows here)';
    console.log(`${load.route}: lesson 9 serves ${ratio.toFixed(2)}× the requests per second of lesson 6${goal}`);
  }
  return EXIT_PASS;
}

runCommand(USAGE, main);
