// npm run bench:reload: what a reload costs a steady load. The lesson-5 solution's rolling
// reload against a restart that stops every worker at once and forks new ones, and, when
// given a pm2 binary, against `pm2 reload` of the lesson-1 server in PM2's cluster mode.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError, VerdictError } from './lib/errors.ts';
import { heavyRounds } from './lib/calibrate.ts';
import { collectPids, coreCount, referenceFile, startFile } from './lib/checks.ts';
import { runLoad, type LoadSummary } from './lib/load.ts';
import { REPO_ROOT, relativeToRepo } from './lib/paths.ts';
import { findFreePort, waitForPort } from './lib/ports.ts';
import { classifyFailures, describeFailureKinds, reloadAndWatch } from './lib/reloads.ts';
import { formatMs } from './lib/report.ts';
import { HOST } from './lib/server-process.ts';

const USAGE = `Usage: npm run bench:reload [-- --reloads N] [-- --workers N] [-- --rps N] [-- --keep-alive] [-- --pm2 PATH]

Runs the lesson-5 solution, then a cluster that restarts every worker at once on
SIGHUP (test/fixtures/05-graceful-reload/kill-all-and-refork.ts), each under the same
steady /heavy load, and reloads each one N times, a reload every 5 s. Prints the
requests that failed while it did, and how long each reload took.

Options:
  --reloads N    reloads per server (default 3)
  --workers N    WORKERS for every server (default 2)
  --rps N        requests per second of /heavy, sent whether or not answers come back
                 (default 50: below what two workers can serve on a 2-core machine)
  --keep-alive   clients keep their connections open across requests
  --pm2 PATH     also run \`PATH reload\` on the lesson-1 server started by PM2 in cluster
                 mode (-i WORKERS). PM2 is no dependency of the course: install it
                 elsewhere, e.g. npm install --prefix /tmp/pm2 pm2
  --help         show this help`;

const CLUSTERS = [referenceFile('05-graceful-reload'), path.join(REPO_ROOT, 'test', 'fixtures', '05-graceful-reload', 'kill-all-and-refork.ts')];
const PM2_SERVER = referenceFile('01-blocking-server');
const RELOAD_INTERVAL_MS = 5_000;
const WARMUP_MS = 1_000;
const TAIL_MS = 1_000;
const RELOAD_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 5_000;
const PID_WAIT_MS = 5_000;
const LISTEN_TIMEOUT_MS = 15_000;
const PM2_COMMAND_TIMEOUT_MS = 60_000;
// With --rps, loadtest opens a client for each request in flight; this only caps them.
const CONCURRENCY = 10;

interface Options {
  reloads: number;
  workers: number;
  rps: number;
  keepAlive: boolean;
}

// What one server did under the load: the load, each reload's duration, and the
// requests that failed from one reload to the next.
interface Measurement {
  // What the reload durations measure.
  reloadLabel: string;
  load: LoadSummary;
  failures: string[];
  reloadMs: (number | undefined)[];
  failedPerReload: number[];
}

// Sends one reload and resolves to its duration, or to undefined if it did not finish.
type Reloader = () => Promise<number | undefined>;

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), {
    reloads: { type: 'string', default: '3' },
    workers: { type: 'string', default: '2' },
    rps: { type: 'string', default: '50' },
    'keep-alive': { type: 'boolean', default: false },
    pm2: { type: 'string' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const options: Options = {
    reloads: parseCount('--reloads', values.reloads),
    workers: parseCount('--workers', values.workers),
    rps: parseCount('--rps', values.rps),
    keepAlive: values['keep-alive'],
  };
  if (values.pm2 !== undefined && !fs.existsSync(values.pm2)) throw new UsageError(`--pm2 ${values.pm2}: no such file`);
  console.log(
    `${coreCount()} cores, HEAVY_ROUNDS=${heavyRounds()}, WORKERS=${options.workers}, ${options.rps} /heavy per second` +
      `${options.keepAlive ? ' over keep-alive connections' : ', a new connection each'}, ${options.reloads} reloads ${RELOAD_INTERVAL_MS / 1000} s apart`,
  );
  for (const file of CLUSTERS) {
    console.log(`\n${relativeToRepo(file)}, SIGHUP to the primary`);
    printMeasurement(await measureCluster(file, options));
  }
  if (values.pm2 !== undefined) printMeasurement(await measurePm2(values.pm2, options));
  return EXIT_PASS;
}

async function measureCluster(file: string, options: Options): Promise<Measurement> {
  const server = await startFile(file, { WORKERS: String(options.workers) });
  try {
    await collectPids(server, options.workers, PID_WAIT_MS, 0);
    return await measure(server.url('/heavy'), options, 'SIGHUP to every old worker gone', async () => {
      const reload = await reloadAndWatch(server, RELOAD_TIMEOUT_MS);
      return reload.done ? reload.ms : undefined;
    });
  } finally {
    await server.stop();
  }
}

// The load runs for the whole series of reloads; each reload starts RELOAD_INTERVAL_MS
// after the last one did (or once it is done, if it took longer).
async function measure(url: string, options: Options, reloadLabel: string, reload: Reloader): Promise<Measurement> {
  const failures: string[] = [];
  const failedAt: number[] = [];
  const seconds = (WARMUP_MS + options.reloads * RELOAD_INTERVAL_MS + TAIL_MS) / 1000;
  const load = runLoad({
    url,
    requests: Math.ceil(options.rps * seconds),
    concurrency: CONCURRENCY,
    rps: options.rps,
    maxSeconds: seconds,
    keepAlive: options.keepAlive,
    timeoutMs: REQUEST_TIMEOUT_MS,
    onOutcome: (error) => {
      if (!error) return;
      failures.push(error);
      failedAt.push(performance.now());
    },
  });
  await sleep(WARMUP_MS);
  const reloadMs: (number | undefined)[] = [];
  const startedAt: number[] = [];
  for (let i = 0; i < options.reloads; i++) {
    startedAt.push(performance.now());
    reloadMs.push(await reload());
    await sleep(Math.max(0, RELOAD_INTERVAL_MS - (performance.now() - startedAt[i])));
  }
  const summary = await load;
  const failedPerReload = startedAt.map((start, i) => failedAt.filter((at) => at >= start && at < (startedAt[i + 1] ?? Infinity)).length);
  return { reloadLabel, load: summary, failures, reloadMs, failedPerReload };
}

async function measurePm2(pm2: string, options: Options): Promise<Measurement> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'course-pm2-'));
  const port = await findFreePort(HOST);
  // PM2 7 refuses .ts files on Node < 22.18; an .mjs file that imports the server runs it,
  // with tsx loaded by --import as the course runs every server.
  const entry = path.join(home, 'lesson-1.mjs');
  fs.writeFileSync(entry, `await import(${JSON.stringify(pathToFileURL(PM2_SERVER).href)});\n`);
  const env = { ...process.env, PM2_HOME: home, PORT: String(port), HOST, HEAVY_ROUNDS: String(heavyRounds()) };
  const run = (args: string[]) => runPm2(pm2, args, env);
  // Ends the daemon this run started in PM2_HOME, and the apps it runs; on Ctrl-C too, as
  // the daemon is in no process group of this command's.
  const killPm2 = () => spawnSync(pm2, ['kill'], { env, timeout: PM2_COMMAND_TIMEOUT_MS });
  process.once('exit', killPm2);
  try {
    // Any pm2 command starts PM2's daemon in PM2_HOME, even --version; pm2 kill ends it.
    const version = (await run(['--version'])).trim().split('\n').at(-1);
    console.log(`\n${relativeToRepo(PM2_SERVER)} under PM2 ${version}, pm2 start -i ${options.workers}, then pm2 reload`);
    await run(['start', entry, '-i', String(options.workers), '--name', 'lesson-1', '--node-args=--import tsx']);
    if (!(await waitForPort(HOST, port, LISTEN_TIMEOUT_MS))) throw new VerdictError(`PM2 started nothing that listens on ${HOST}:${port} within ${LISTEN_TIMEOUT_MS / 1000} s`);
    return await measure(`http://${HOST}:${port}/heavy`, options, 'pm2 reload returned after', async () => {
      const started = performance.now();
      await run(['reload', 'lesson-1']);
      return performance.now() - started;
    });
  } finally {
    process.off('exit', killPm2);
    killPm2();
    fs.rmSync(home, { recursive: true, force: true });
  }
}

function runPm2(pm2: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(pm2, args, { cwd: REPO_ROOT, env, timeout: PM2_COMMAND_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error) reject(new VerdictError(`pm2 ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

function printMeasurement({ reloadLabel, load, failures, reloadMs, failedPerReload }: Measurement): void {
  const kinds = describeFailureKinds(classifyFailures(failures));
  console.log(`  failed: ${load.errors} of ${load.requests} /heavy${kinds ? ` (${kinds})` : ''}`);
  console.log(`  failed per reload: ${failedPerReload.join(', ')}`);
  console.log(`  ${reloadLabel}: ${reloadMs.map((ms) => (ms === undefined ? `not done in ${RELOAD_TIMEOUT_MS / 1000} s` : formatMs(ms))).join(', ')}`);
  console.log(`  latency: p50 ${formatMs(load.p50Ms)}, p99 ${formatMs(load.p99Ms)}, max ${formatMs(load.maxMs)}`);
}

function parseCount(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, got "${text}"`, true);
  return value;
}

runCommand(USAGE, main);
