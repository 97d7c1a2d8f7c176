// What `npm run compare` prints and saves: this machine's two rows beside the
// published ones as a table, and as bars that show the difference at a glance. The
// rows and their metrics are lesson 4's solution: the command is built from what the
// lesson asks the learner to write.
import { formatRatio, METRICS, type Load, type Metric, type Row } from '../../solutions/04-load-test-comparison/compare.ts';

// The run this course reproduces, as published. It did not report percentiles.
export const PUBLISHED = {
  command: 'npx loadtest -c 10 --rps 100 -n 500 http://localhost:3000/heavy',
  serial: { errors: 149, meanLatencyMs: 3052.1, effectiveRps: 41, completed: 500, seconds: 12.217, p50Ms: NaN, p95Ms: NaN, p99Ms: NaN },
  cluster: { errors: 0, meanLatencyMs: 726.6, effectiveRps: 74, completed: 500, seconds: 6.792, p50Ms: NaN, p95Ms: NaN, p99Ms: NaN },
} satisfies { command: string; serial: Row; cluster: Row };

// The course's benchmark: under the published load the cluster fails nothing and
// answers this many times as many requests per second as one process.
export const MIN_SPEEDUP = 1.6;

export interface Target {
  line: string;
  // null when this machine cannot meet it, whatever the code does.
  met: boolean | null;
}

export interface Comparison {
  finishedAt: string;
  machine: { cores: number; cpu: string; node: string };
  heavyRounds: number;
  load: Load;
  servers: { serial: string; cluster: string; workers: number };
  serial: Row;
  cluster: Row;
  published: typeof PUBLISHED;
  targets: Target[];
}

const LABEL_WIDTH = 14;
const COLUMN_WIDTH = 12;
const RATIO_WIDTH = 16;
const GROUP_GAP = '   │';
const BAR_WIDTH = 40;
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
const LATENCY_BARS: [string, keyof Row][] = [
  ['mean', 'meanLatencyMs'],
  ['p50', 'p50Ms'],
  ['p95', 'p95Ms'],
  ['p99', 'p99Ms'],
];
const FOOTNOTE_MARK = '¹';

// `busy` is why a missed speed target may say nothing of the cluster (other programs were
// using the CPU), or undefined: a miss then prints as not measured, never as a ✘.
export function judgeTargets(serial: Row, cluster: Row, cores: number, busy?: string): Target[] {
  const speedup = cluster.effectiveRps / serial.effectiveRps;
  const rateLine = `cluster: effective rps ${Math.round(cluster.effectiveRps)} ≥ ${MIN_SPEEDUP} × serial ${Math.round(serial.effectiveRps)} (${speedup.toFixed(2)}×)`;
  const rates = `cluster: effective rps ${Math.round(cluster.effectiveRps)}, serial ${Math.round(serial.effectiveRps)} (${speedup.toFixed(2)}×)`;
  const speed: Target =
    cores < 2
      ? { line: `${rates}; not measured: this machine has 1 core, and a cluster cannot beat one process on one core`, met: null }
      : speedup < MIN_SPEEDUP && busy
        ? { line: `${rates}, the target is ${MIN_SPEEDUP}×; not measured: ${busy}`, met: null }
        : { line: rateLine, met: speedup >= MIN_SPEEDUP };
  return [{ line: `cluster: ${cluster.errors} errors of ${cluster.completed}`, met: cluster.errors === 0 }, speed];
}

// Why a target was missed, as far as the numbers tell.
export function explainMiss(serial: Row, cluster: Row): string {
  if (serial.errors === 0 && serial.p99Ms < cluster.p99Ms * 4) {
    return 'The serial server kept up with this load, so the cluster had nothing to win: send more with --rps.';
  }
  return 'Something else may have been using the CPU during one of the runs (the load generator shares the cores too): run it again on a quiet machine.';
}

export function formatTarget(target: Target): string {
  return `${target.line} ${target.met === null ? '–' : target.met ? '✔' : '✘'}`;
}

// The published effective rps is loadtest's, which counts a failed request as served.
export function footnote(): string {
  const answered = (PUBLISHED.serial.completed - PUBLISHED.serial.errors) / PUBLISHED.serial.seconds;
  return `${FOOTNOTE_MARK} loadtest's own effective rps, which counts failed requests as served. This course counts answers only: by that count the published serial run made ${Math.round(answered)} per second.`;
}

// A latency this close to the client's timeout is a request given up on.
const TIMEOUT_SHARE = 0.99;

// What the columns mean where a reader could take them wrong: completed beside errors,
// a percentile capped at the timeout, and a serial run whose errors change every run.
export function explainColumns(comparison: Comparison): string {
  const { serial, cluster, load } = comparison;
  const lines = [
    `completed: requests that ended, answered or given up on; errors: those given up on after ${load.timeoutMs} ms, or answered with an error.`,
  ];
  const capped = LATENCY_BARS.flatMap(([name, key]) =>
    (['serial', 'cluster'] as const).filter((side) => comparison[side][key] >= load.timeoutMs * TIMEOUT_SHARE).map((side) => `${side} ${name}`),
  );
  if (capped.length > 0) {
    lines.push(`${capped.join(', ')}: at the ${load.timeoutMs} ms timeout, so requests given up on: how long they would have waited is not known.`);
  }
  const asked = load.rps > 0 ? `${load.rps} per second were sent, it answered ${Math.round(serial.effectiveRps)}` : undefined;
  if (serial.errors > 0 && serial.errors > cluster.errors && asked) {
    lines.push(
      `The serial server was sent more than it can serve (${asked}): its queue grows all run, so how many requests wait past the timeout depends on how fast ` +
        `it ran in these few seconds, which other programs and the CPU clock change. Its errors vary from run to run${cluster.errors === 0 ? "; the cluster, with room to spare, had none" : ''}.`,
    );
  }
  return lines.join('\n');
}

export function formatTextTable(comparison: Comparison): string {
  const { serial, cluster, published } = comparison;
  const group = (title: string) => centre(title, COLUMN_WIDTH * 2 + RATIO_WIDTH);
  const titles = ['serial'.padStart(COLUMN_WIDTH), 'cluster'.padStart(COLUMN_WIDTH), 'cluster/serial'.padStart(RATIO_WIDTH)].join('');
  const lines = [
    ''.padEnd(LABEL_WIDTH) + group(`this machine, ${comparison.machine.cores} cores`) + GROUP_GAP + group('published'),
    ''.padEnd(LABEL_WIDTH) + titles + GROUP_GAP + titles,
  ];
  for (const metric of METRICS) {
    const cells = (left: Row, right: Row, mark = '') => [
      (formatCell(metric, left[metric.key]) + mark).padStart(COLUMN_WIDTH),
      formatCell(metric, right[metric.key]).padStart(COLUMN_WIDTH),
      formatRatio(right[metric.key], left[metric.key]).padStart(RATIO_WIDTH),
    ];
    const mark = metric.key === 'effectiveRps' ? FOOTNOTE_MARK : '';
    lines.push(metric.label.padEnd(LABEL_WIDTH) + cells(serial, cluster).join('') + GROUP_GAP + cells(published.serial, published.cluster, mark).join(''));
  }
  return lines.join('\n');
}

export function formatMarkdownTable(comparison: Comparison): string {
  const { serial, cluster, published } = comparison;
  const lines = [
    `| | serial | cluster | cluster/serial | published serial | published cluster | published cluster/serial |`,
    `|---|---:|---:|---:|---:|---:|---:|`,
  ];
  for (const metric of METRICS) {
    const mark = metric.key === 'effectiveRps' ? FOOTNOTE_MARK : '';
    const cells = [
      formatCell(metric, serial[metric.key]),
      formatCell(metric, cluster[metric.key]),
      formatRatio(cluster[metric.key], serial[metric.key]),
      formatCell(metric, published.serial[metric.key]) + mark,
      formatCell(metric, published.cluster[metric.key]),
      formatRatio(published.cluster[metric.key], published.serial[metric.key]),
    ];
    lines.push(`| ${metric.label} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

// Latency and throughput as bars, serial above cluster, on one scale each.
export function formatChart(serial: Row, cluster: Row): string {
  const maxMs = Math.max(...LATENCY_BARS.flatMap(([, key]) => [serial[key], cluster[key]]));
  const lines = ['latency in ms: shorter is better'];
  for (const [name, key] of LATENCY_BARS) {
    lines.push(`  ${name.padEnd(6)}serial   ${bar(serial[key], maxMs)} ${Math.round(serial[key])}`);
    lines.push(`  ${''.padEnd(6)}cluster  ${bar(cluster[key], maxMs)} ${Math.round(cluster[key])}`);
  }
  const maxRate = Math.max(serial.effectiveRps, cluster.effectiveRps);
  lines.push('', 'answers per second: longer is better');
  lines.push(`  ${''.padEnd(6)}serial   ${bar(serial.effectiveRps, maxRate)} ${Math.round(serial.effectiveRps)}`);
  lines.push(`  ${''.padEnd(6)}cluster  ${bar(cluster.effectiveRps, maxRate)} ${Math.round(cluster.effectiveRps)}`);
  return lines.join('\n');
}

export function formatMarkdown(comparison: Comparison): string {
  const { machine, load, servers } = comparison;
  return [
    '# Serial against cluster: `npm run compare`',
    '',
    `Measured ${comparison.finishedAt.slice(0, 16).replace('T', ' ')} UTC on ${machine.cores} cores (${machine.cpu}), Node.js ${machine.node}, ` +
      `with HEAVY_ROUNDS=${comparison.heavyRounds}, so that one \`/heavy\` costs about 15 ms of CPU.`,
    '',
    `The load, the same for both: ${describeLoad(load)}.`,
    `Serial: \`${servers.serial}\`. Cluster: \`${servers.cluster}\`, ${servers.workers} workers.`,
    '',
    '```text',
    formatChart(comparison.serial, comparison.cluster),
    '```',
    '',
    formatMarkdownTable(comparison),
    '',
    footnote(),
    '',
    ...explainColumns(comparison).split('\n').flatMap((line) => [line, '']),
    `Published: \`${PUBLISHED.command}\`.`,
    '',
    ...comparison.targets.map((target) => `- ${formatTarget(target)}`),
    ...(comparison.targets.some((target) => target.met === false) ? ['', explainMiss(comparison.serial, comparison.cluster)] : []),
    '',
    'What each column means, and why: `lessons/04-load-test-comparison/README.md`.',
    '',
  ].join('\n');
}

export function describeLoad(load: Load): string {
  const rate = load.rps > 0 ? `at ${load.rps} per second, starting with ${load.concurrency} clients` : `from ${load.concurrency} clients in a closed loop`;
  return `${load.requests} requests to /heavy ${rate}, each given up after ${load.timeoutMs} ms`;
}

function centre(text: string, width: number): string {
  return text.padStart(Math.floor((width + text.length) / 2)).padEnd(width);
}

function formatCell(metric: Metric, value: number): string {
  return Number.isFinite(value) ? metric.format(value) : '–';
}

function bar(value: number, max: number): string {
  const eighths = max > 0 ? Math.round((value / max) * BAR_WIDTH * 8) : 0;
  const drawn = '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
  // A value too small for an eighth still gets a sliver, so no bar reads as zero.
  return (drawn || (value > 0 ? EIGHTHS[1] : '')).padEnd(BAR_WIDTH);
}
