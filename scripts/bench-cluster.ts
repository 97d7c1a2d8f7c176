// npm run bench:cluster: how many times the lesson-1 server's throughput the
// lesson-2 cluster serves on this machine, as the median of interleaved pairs
// (serial, cluster, serial, cluster, …) so a noisy neighbour hits both sides alike.
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { heavyRounds } from './lib/calibrate.ts';
import { coreCount, measureThroughput, median, referenceFile, startFile } from './lib/checks.ts';
import { formatRate } from './lib/report.ts';

const USAGE = `Usage: npm run bench:cluster [-- --pairs N] [-- --requests N]

Measures /heavy throughput of the lesson-1 and lesson-2 solutions in interleaved
pairs and prints each pair and the median speedup.

Options:
  --pairs N     pairs to measure (default 5)
  --requests N  requests per measurement, 10 clients in a closed loop (default 150)
  --help        show this help`;

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), {
    pairs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '150' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const pairs = parseCount('--pairs', values.pairs);
  const requests = parseCount('--requests', values.requests);
  console.log(`${coreCount()} cores, HEAVY_ROUNDS=${heavyRounds()}, ${pairs} pairs of ${requests} requests`);
  const serial = await startFile(referenceFile('01-blocking-server'));
  const cluster = await startFile(referenceFile('02-basic-cluster'));
  try {
    const speedups: number[] = [];
    for (let pair = 1; pair <= pairs; pair++) {
      const serialRun = await measureThroughput(serial, requests);
      const clusterRun = await measureThroughput(cluster, requests);
      speedups.push(clusterRun.rps / serialRun.rps);
      console.log(`pair ${pair}: serial ${formatRate(serialRun.rps)}, cluster ${formatRate(clusterRun.rps)} (${speedups.at(-1)!.toFixed(2)}×)`);
    }
    console.log(`median speedup ${median(speedups).toFixed(2)}× (min ${Math.min(...speedups).toFixed(2)}×, max ${Math.max(...speedups).toFixed(2)}×)`);
  } finally {
    await Promise.all([serial.stop(), cluster.stop()]);
  }
  return EXIT_PASS;
}

function parseCount(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, got "${text}"`, true);
  return value;
}

runCommand(USAGE, main);
