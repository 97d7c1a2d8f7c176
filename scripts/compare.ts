// npm run compare: the same load against the serial server and then the cluster, one
// table beside the published numbers, saved to results/ once both runs have finished.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { measure, type Load, type Row } from '../solutions/04-load-test-comparison/compare.ts';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError, VerdictError } from './lib/errors.ts';
import { heavyRounds, TARGET_HEAVY_MS } from './lib/calibrate.ts';
import { busyMachineReason, coreCount } from './lib/checks.ts';
import { REPO_ROOT, relativeToRepo } from './lib/paths.ts';
import { findFreePort } from './lib/ports.ts';
import { HOST, startServer, type ServerProcess } from './lib/server-process.ts';
import { ProgressLine } from './lib/progress-line.ts';
import {
  describeLoad,
  explainColumns,
  explainMiss,
  footnote,
  formatChart,
  formatMarkdown,
  formatTarget,
  formatTextTable,
  judgeTargets,
  MIN_SPEEDUP,
  PUBLISHED,
  type Comparison,
} from './lib/comparison.ts';

const USAGE = `Usage: npm run compare [-- options]

Sends the same load to the serial server (lesson 1) and then to the cluster
(lesson 3), each on a free port of ${HOST} with HEAVY_ROUNDS calibrated as the checks
calibrate it, and prints the two runs side by side with the published numbers:
  npx loadtest -c 10 --rps 100 -n 500 http://localhost:3000/heavy
A client gives up on a request after --timeout ms, and it counts as an error.

Options:
  --concurrency N  clients loadtest starts with (default 10); at a fixed rate it
                   adds one whenever all of them are waiting
  --rps N          requests per second, sent whether or not answers come back
                   (default 100); 0 for a closed loop of --concurrency clients
  --requests N     requests in each run (default 500)
  --timeout MS     give up on a request after MS milliseconds (default 2000)
  --workers N      workers in the cluster (default: one per core)
  --learner        compare your lesson-1 and lesson-3 servers, not the solutions
  --help           show this help

Writes results/compare.json and results/compare.md once both runs have finished.

Examples:
  npm run compare
  npm run compare -- --rps 200 --requests 1000
  npm run compare -- --learner`;

const DEFAULTS = { concurrency: '10', rps: '100', requests: '500', timeout: '2000' };
const SERIAL_LESSON = '01-blocking-server';
// Lesson 3's cluster, which also replaces a worker that crashes.
const CLUSTER_LESSON = '03-restart-and-isolation';
const RESULTS_DIR = path.join(REPO_ROOT, 'results');

interface Side {
  name: 'serial' | 'cluster';
  lesson: string;
  file: string;
  env: Record<string, string>;
}

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), {
    concurrency: { type: 'string', default: DEFAULTS.concurrency },
    rps: { type: 'string', default: DEFAULTS.rps },
    requests: { type: 'string', default: DEFAULTS.requests },
    timeout: { type: 'string', default: DEFAULTS.timeout },
    workers: { type: 'string' },
    learner: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const load: Load = {
    concurrency: parseWhole('--concurrency', values.concurrency, 1),
    rps: parseWhole('--rps', values.rps, 0),
    requests: parseWhole('--requests', values.requests, 1),
    timeoutMs: parseWhole('--timeout', values.timeout, 1),
  };
  const workers = values.workers === undefined ? coreCount() : parseWhole('--workers', values.workers, 1);
  const serial: Side = { name: 'serial', ...lessonSide(SERIAL_LESSON, values.learner), env: {} };
  const cluster: Side = { name: 'cluster', ...lessonSide(CLUSTER_LESSON, values.learner), env: { WORKERS: String(workers) } };

  console.log(`${coreCount()} cores, HEAVY_ROUNDS=${heavyRounds()} (one /heavy costs about ${TARGET_HEAVY_MS} ms of CPU)`);
  console.log(`The same load for each: ${describeLoad(load)}.\n`);
  const serialRow = await run(serial, load);
  const clusterRow = await run(cluster, load);

  const comparison: Comparison = {
    finishedAt: new Date().toISOString(),
    machine: { cores: coreCount(), cpu: os.cpus()[0]?.model ?? 'unknown CPU', node: process.version },
    heavyRounds: heavyRounds(),
    load,
    servers: { serial: relativeToRepo(serial.file), cluster: relativeToRepo(cluster.file), workers },
    serial: serialRow,
    cluster: clusterRow,
    published: PUBLISHED,
    targets: judgeTargets(serialRow, clusterRow, coreCount(), await busyIfSlow(serialRow, clusterRow)),
  };
  console.log(`\n${formatTextTable(comparison)}\n\n${footnote()}\n${explainColumns(comparison)}\n\n${formatChart(serialRow, clusterRow)}\n`);
  for (const target of comparison.targets) console.log(formatTarget(target));
  if (comparison.targets.some((target) => target.met === false)) console.log(explainMiss(serialRow, clusterRow));
  writeResults(comparison);
  console.log(`\nWrote ${relativeToRepo(path.join(RESULTS_DIR, 'compare.json'))} and compare.md. What each column means: lessons/04-load-test-comparison/README.md`);
  return EXIT_PASS;
}

// Sampled only when the cluster missed its speed target, with both servers stopped: what
// other programs use of the CPU then is what they were likely using during the runs.
async function busyIfSlow(serial: Row, cluster: Row): Promise<string | undefined> {
  return cluster.effectiveRps < MIN_SPEEDUP * serial.effectiveRps ? busyMachineReason() : undefined;
}

// Starts one server, sends it the load, and stops it before the next run starts: a
// serial server goes on computing the answers its clients gave up on.
async function run(side: Side, load: Load): Promise<Row> {
  const workers = side.env.WORKERS ? `, ${side.env.WORKERS} workers` : '';
  console.log(`${side.name.padEnd(8)} ${relativeToRepo(side.file)}${workers}`);
  const server = await start(side);
  const started = performance.now();
  let ended = 0;
  let errors = 0;
  const describe = () => `${side.name.padEnd(8)} ${ended}/${load.requests} ended, ${errors} errors, ${((performance.now() - started) / 1000).toFixed(1)} s`;
  const progress = new ProgressLine(describe);
  try {
    const row = await measure(server.url('/heavy'), load, (failed) => {
      ended += 1;
      if (failed) errors += 1;
      progress.update(ended / load.requests);
    }).catch((error: Error) => {
      throw new VerdictError(`loadtest failed against the ${side.name} server: ${error.message}`);
    });
    progress.finish(describe());
    if (row.errors === row.completed) {
      throw new VerdictError(`The ${side.name} server answered none of ${row.completed} requests: does ${relativeToRepo(side.file)} pass its lesson? Run npm run check ${side.lesson}.`);
    }
    if (server.exitInfo) console.log(`${side.name.padEnd(8)} the server exited during the run (${describeExit(server)}): its errors are requests nobody answered`);
    return row;
  } finally {
    progress.stop();
    await server.stop();
  }
}

async function start(side: Side): Promise<ServerProcess> {
  const port = await findFreePort(HOST);
  try {
    return await startServer({ file: side.file, port, env: { HEAVY_ROUNDS: String(heavyRounds()), ...side.env } });
  } catch (error) {
    if (!(error instanceof VerdictError) || !error.message.includes('EADDRINUSE')) throw error;
    // Node's error names the port twice; the harness quotes only the last lines of it.
    const busyPort = error.message.match(/already in use \S*:(\d+)|port: (\d+)/)?.slice(1).find(Boolean) ?? port;
    throw new VerdictError(`Port busy: ${relativeToRepo(side.file)} could not listen on port ${busyPort}, which another program is using. Stop that program and run npm run compare again.`);
  }
}

function describeExit(server: ServerProcess): string {
  const exit = server.exitInfo!;
  return exit.signal ? `killed by ${exit.signal}` : `code ${exit.code}`;
}

function lessonSide(slug: string, learner: boolean): { lesson: string; file: string } {
  const file = path.join(REPO_ROOT, learner ? 'lessons' : 'solutions', slug, 'server.ts');
  return { lesson: `lesson-${Number(slug.slice(0, 2))}${learner ? '' : ' -- --solution'}`, file };
}

function parseWhole(flag: string, text: string, min: number): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isInteger(value) || value < min) {
    throw new UsageError(`${flag} must be a whole number ≥ ${min}, got "${text}"`, true);
  }
  return value;
}

// Each file is written beside its final name and renamed over it, so a file in
// results/ is always a whole one; nothing is written until both runs have finished.
function writeResults(comparison: Comparison): void {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const files: [string, string][] = [
    ['compare.json', `${JSON.stringify(comparison, null, 2)}\n`],
    ['compare.md', formatMarkdown(comparison)],
  ];
  for (const [name, text] of files) {
    const final = path.join(RESULTS_DIR, name);
    const temporary = `${final}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, text);
    fs.renameSync(temporary, final);
  }
}

runCommand(USAGE, main);
