// npm run bench:threads: the lesson-1 server, the lesson-2 cluster and the lesson-7
// thread pool side by side, with WORKERS = this machine's cores: throughput, /light
// under a /heavy load, memory, start time, and what a native crash (SIGSEGV, as a bug in
// an add-on would raise) costs each. Lesson 7's README quotes the table.
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { heavyRounds } from './lib/calibrate.ts';
import { coreCount, lightUnderLoad, measureThroughput, median, referenceFile, startFile } from './lib/checks.ts';
import { get } from './lib/http.ts';
import { runLoad } from './lib/load.ts';
import { formatMemory, measureGroupMemory } from './lib/memory.ts';
import { formatMs, formatRate } from './lib/report.ts';
import type { ServerProcess } from './lib/server-process.ts';

const USAGE = `Usage: npm run bench:threads [-- --rounds N]

Starts the lesson-1 server, the lesson-2 cluster and the lesson-7 thread pool, each
with WORKERS set to this machine's cores, and prints a table: /heavy throughput (the
median of interleaved rounds), the median /light while 10 clients keep /heavy busy,
memory (PSS on Linux), the time from start to the first /heavy answered, and what a
SIGSEGV sent under load costs (to the pool's one process, to one of the cluster's
workers); then what each worker adds to the memory of a cluster and of a pool.

Options:
  --rounds N  interleaved rounds of throughput and /light (default 3)
  --help      show this help`;

const THROUGHPUT_REQUESTS = 150;
const FIRST_ANSWER_TIMEOUT_MS = 10_000;
const CRASH_LOAD = { concurrency: 4, seconds: 3, timeoutMs: 2_000 };
const CRASH_AFTER_MS = 1_000;
const MEMORY_WORKERS = 4;

interface Contender {
  name: string;
  file: string;
  server?: ServerProcess;
  startMs?: number;
  rps: number[];
  lightMs: number[];
}

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), {
    rounds: { type: 'string', default: '3' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError(`--rounds must be a whole number ≥ 1, got "${values.rounds}"`, true);
  const workers = String(coreCount());
  console.log(`${workers} cores, WORKERS=${workers}, HEAVY_ROUNDS=${heavyRounds()}, ${rounds} rounds`);
  const contenders: Contender[] = [
    { name: 'lesson 1: one thread', file: referenceFile('01-blocking-server'), rps: [], lightMs: [] },
    { name: 'lesson 2: cluster', file: referenceFile('02-basic-cluster'), rps: [], lightMs: [] },
    { name: 'lesson 7: thread pool', file: referenceFile('07-worker-threads'), rps: [], lightMs: [] },
  ];
  try {
    for (const contender of contenders) {
      const started = performance.now();
      contender.server = await startFile(contender.file, { WORKERS: workers });
      await get(contender.server.url('/heavy'), FIRST_ANSWER_TIMEOUT_MS);
      contender.startMs = performance.now() - started;
    }
    for (let round = 1; round <= rounds; round++) {
      for (const contender of contenders) {
        contender.rps.push((await measureThroughput(contender.server!, THROUGHPUT_REQUESTS)).rps);
        contender.lightMs.push(await lightUnderLoad(contender.server!));
      }
      console.log(`round ${round}: ${contenders.map((c) => `${c.name} ${formatRate(c.rps.at(-1)!)}, /light ${formatMs(c.lightMs.at(-1)!)}`).join('; ')}`);
    }
    const memory = contenders.map((contender) => measureGroupMemory(contender.server!));
    const crashes: string[] = [];
    for (const contender of contenders) crashes.push(await crashUnderLoad(contender));
    console.log('');
    console.log('| server | /heavy throughput | /light under /heavy load | memory | start to first /heavy | SIGSEGV under load |');
    console.log('|---|---|---|---|---|---|');
    contenders.forEach((contender, index) => {
      const cells = [contender.name, formatRate(median(contender.rps)), formatMs(median(contender.lightMs)), formatMemory(memory[index]), formatMs(contender.startMs!), crashes[index]];
      console.log(`| ${cells.join(' | ')} |`);
    });
    const [serial, cluster, pool] = contenders;
    console.log('');
    const [clusterWorker, poolThread] = [await memoryPerWorker(cluster.file), await memoryPerWorker(pool.file)];
    console.log(`each worker adds (WORKERS=1 against WORKERS=${MEMORY_WORKERS}): a cluster's ${formatMb(clusterWorker)}, a pool's ${formatMb(poolThread)}`);
    console.log(`pool throughput ${(median(pool.rps) / median(cluster.rps)).toFixed(2)} × the cluster's (target ≥ 0.9 on 2 cores)`);
    console.log(`pool memory ${(memory[2].bytes / memory[1].bytes).toFixed(2)} × the cluster's (target ≤ 0.6)`);
    console.log(`pool /light ${(median(pool.lightMs) / median(serial.lightMs)).toFixed(3)} × the lesson-1 server's (target ≤ 0.1)`);
  } finally {
    await Promise.all(contenders.map((contender) => contender.server?.stop()));
  }
  return EXIT_PASS;
}

// What one more worker costs: the memory of WORKERS=MEMORY_WORKERS less that of WORKERS=1,
// over the workers between them, each server warmed with a /heavy load first.
async function memoryPerWorker(file: string): Promise<number> {
  const totals: number[] = [];
  for (const workers of [1, MEMORY_WORKERS]) {
    const server = await startFile(file, { WORKERS: String(workers) });
    try {
      await runLoad({ url: server.url('/heavy'), requests: 40, concurrency: 8 });
      totals.push(measureGroupMemory(server).bytes);
    } finally {
      await server.stop();
    }
  }
  return (totals[1] - totals[0]) / (MEMORY_WORKERS - 1);
}

function formatMb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

// SIGSEGV, as a native add-on's bug would raise, to the process that computes /heavy: the
// pool's only process, or one worker of the cluster (the lesson-1 server's only process).
async function crashUnderLoad(contender: Contender): Promise<string> {
  const server = contender.server!;
  server.exitExpected = true;
  const load = runLoad({ url: server.url('/heavy'), requests: 10_000, concurrency: CRASH_LOAD.concurrency, timeoutMs: CRASH_LOAD.timeoutMs, maxSeconds: CRASH_LOAD.seconds });
  await sleep(CRASH_AFTER_MS);
  const victim = server.workerPids()[0] ?? server.pid;
  process.kill(victim, 'SIGSEGV');
  const run = await load;
  const alive = server.exitInfo === null && (await get(server.url('/light')).then(() => true, () => false));
  if (!alive) return `the server is gone: every request after it failed (${run.errors} of ${run.requests})`;
  return `${run.errors} of ${run.requests} failed, those on the killed worker; still serves`;
}

runCommand(USAGE, main);
