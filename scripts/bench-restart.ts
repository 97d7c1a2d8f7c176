// npm run bench:restart: what a crash costs the lesson-3 solution and the restart most
// tutorials stop at, cluster.on('exit', () => cluster.fork()): the time from a crash to
// a healed pool, idle and under load, and the /heavy requests a load loses per crash.
// Then a poison request retried (a /crash every 400 ms for 8 s under a steady /heavy
// load) against those two and the storm guard that counts every death.
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { heavyRounds } from './lib/calibrate.ts';
import { collectPids, coreCount, median, referenceFile, startFile } from './lib/checks.ts';
import { floodWithCrashes, sendCrash, watchHeal } from './lib/crashes.ts';
import { applyFixtureDiff } from '../test/fixture-diffs.ts';
import { runLoad, type LoadSummary } from './lib/load.ts';
import { REPO_ROOT, relativeToRepo } from './lib/paths.ts';
import { formatMs } from './lib/report.ts';
import type { ExitInfo, ServerProcess } from './lib/server-process.ts';

const USAGE = `Usage: npm run bench:restart [-- --crashes N] [-- --interval MS] [-- --workers N]

Runs the lesson-3 solution, then the naive fork-on-exit cluster. Each gets a /crash
every interval, first while idle, then while 10 clients load /heavy in a closed loop.
Prints how long each crash took to heal, and the /heavy requests lost per crash.
Then the flood: a /crash every 400 ms for 8 s under 60 /heavy a second, to 1 and then 2
workers of the solution, to the naive cluster, and to a guard that counts every death (the fixture
counts-every-death.diff); prints what each lost, and whether its primary survived.

Options:
  --crashes N    crashes per server, idle and again under load (default 3)
  --interval MS  milliseconds between crashes (default 5500: longer than the solution's
                 STABLE_UPTIME_MS, so that each crash is an isolated one and is
                 restarted after the first RESTART_DELAY_MS)
  --workers N    WORKERS for both servers (default 4; the flood runs 1, then 2)
  --help         show this help`;

const SERVERS = [
  referenceFile('03-restart-and-isolation'),
  path.join(REPO_ROOT, 'test', 'fixtures', '03-restart-and-isolation', 'naive-fork-on-exit.ts'),
];
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', '03-restart-and-isolation');
const FLOOD_SERVERS = () => [...SERVERS, applyFixtureDiff(path.join(FIXTURES, 'counts-every-death.diff'))];
// One worker, as in lesson 3's check, where nothing else keeps the port open; then two.
const FLOOD_WORKERS = [1, 2];
const FLOOD = { crashIntervalMs: 400, floodMs: 8_000, rps: 60, concurrency: 10, tailMs: 1_000, requestTimeoutMs: 5_000, healTimeoutMs: 3_000 };
const CONCURRENCY = 10;
const WARMUP_MS = 500;
const HEAL_TIMEOUT_MS = 3_000;
const PID_WAIT_MS = 5_000;
// Only bounds the load; the load's length is set by the crashes.
const MAX_REQUESTS = 1_000_000;

interface Options {
  crashes: number;
  intervalMs: number;
  workers: number;
}

interface Crashes {
  answers: string[];
  healMs: (number | undefined)[];
}

interface Measurement {
  idle: Crashes;
  loaded: Crashes;
  load: LoadSummary;
  exit: ExitInfo | null;
}

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), {
    crashes: { type: 'string', default: '3' },
    interval: { type: 'string', default: '5500' },
    workers: { type: 'string', default: '4' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const options = {
    crashes: parseCount('--crashes', values.crashes),
    intervalMs: parseCount('--interval', values.interval),
    workers: parseCount('--workers', values.workers),
  };
  console.log(
    `${coreCount()} cores, HEAVY_ROUNDS=${heavyRounds()}, WORKERS=${options.workers}, ` +
      `${CONCURRENCY} clients on /heavy, ${options.crashes} crashes ${options.intervalMs} ms apart`,
  );
  for (const file of SERVERS) {
    console.log(`\n${relativeToRepo(file)}`);
    printMeasurement(await measure(file, options), options.crashes);
  }
  for (const workers of FLOOD_WORKERS) {
    console.log(`\nThe flood: a /crash every ${FLOOD.crashIntervalMs} ms for ${FLOOD.floodMs / 1000} s, ${FLOOD.rps} /heavy a second, WORKERS=${workers}`);
    for (const file of FLOOD_SERVERS()) await measureFlood(file, workers);
  }
  return EXIT_PASS;
}

async function measureFlood(file: string, workers: number): Promise<void> {
  const server = await startFile(file, { WORKERS: String(workers) });
  try {
    await collectPids(server, workers, PID_WAIT_MS, 0);
    const flood = await floodWithCrashes(server, workers, FLOOD);
    const crashes = flood.crashAnswers.length;
    const lost = flood.load.errors;
    console.log(`\n${relativeToRepo(file)}`);
    console.log(`  /heavy failed: ${lost} of ${flood.load.requests} across ${crashes} crashes, ${(lost / Math.max(1, crashes)).toFixed(2)} per crash`);
    if (server.exitInfo) console.log(`  the primary exited with code ${server.exitInfo.code ?? server.exitInfo.signal} after ${crashes} crashes; nothing served after it`);
    else console.log(`  the primary stayed up; whole again ${flood.heal.whole ? formatMs(flood.heal.ms) : `not within ${FLOOD.healTimeoutMs / 1000} s`} after the last crash`);
  } finally {
    await server.stop();
  }
}

async function measure(file: string, options: Options): Promise<Measurement> {
  const server = await startFile(file, { WORKERS: String(options.workers) });
  try {
    await collectPids(server, options.workers, PID_WAIT_MS, 0);
    const idle = await crashEvery(server, options);
    const seconds = (WARMUP_MS + options.crashes * options.intervalMs) / 1000;
    const load = runLoad({ url: server.url('/heavy'), requests: MAX_REQUESTS, concurrency: CONCURRENCY, maxSeconds: seconds });
    await sleep(WARMUP_MS);
    const loaded = await crashEvery(server, options);
    return { idle, loaded, load: await load, exit: server.exitInfo };
  } finally {
    await server.stop();
  }
}

// A /crash every intervalMs (and never sooner), each watched until the pool heals.
async function crashEvery(server: ServerProcess, options: Options): Promise<Crashes> {
  const answers: string[] = [];
  const healMs: (number | undefined)[] = [];
  for (let i = 0; i < options.crashes && !server.exitInfo; i++) {
    const started = performance.now();
    const answer = sendCrash(server);
    const heal = await watchHeal(server, server.workerPids(), HEAL_TIMEOUT_MS);
    healMs.push(heal.healed ? heal.ms : undefined);
    answers.push(await answer);
    await sleep(Math.max(0, options.intervalMs - (performance.now() - started)));
  }
  return { answers, healMs };
}

function printMeasurement({ idle, loaded, load, exit }: Measurement, crashes: number): void {
  console.log(`  idle, crash to healed pool: ${describeHeals(idle.healMs)}`);
  console.log(`  under load, crash to healed pool: ${describeHeals(loaded.healMs)}`);
  const perCrash = load.errors / Math.max(1, loaded.answers.length);
  console.log(`  under load, /heavy failed: ${load.errors} of ${load.requests}, ${perCrash.toFixed(2)} per crash`);
  console.log(`  /crash answers: ${[...idle.answers, ...loaded.answers].join(', ')}`);
  const sent = idle.answers.length + loaded.answers.length;
  if (exit) console.log(`  the primary exited with code ${exit.code ?? exit.signal} after ${sent} of ${2 * crashes} crashes`);
}

function describeHeals(healMs: (number | undefined)[]): string {
  const each = healMs.map((ms) => (ms === undefined ? `not within ${HEAL_TIMEOUT_MS / 1000} s` : formatMs(ms))).join(', ');
  const healed = healMs.filter((ms): ms is number => ms !== undefined);
  if (healed.length === 0) return each;
  return `${each} (median ${formatMs(median(healed))}, max ${formatMs(Math.max(...healed))})`;
}

function parseCount(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, got "${text}"`, true);
  return value;
}

runCommand(USAGE, main);
