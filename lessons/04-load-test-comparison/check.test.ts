// Lesson 4 checks. They verify that:
// - measure() sends its load with loadtest to the serial server (lesson 1's solution)
//   and to a cluster (lesson 2's), returns a row with every field, and calls onFinish
//   once for every request, with whether it failed
// - each row agrees with what the check counted itself, in a proxy between loadtest
//   and the server, within TOLERANCE
// - toRow() fills each field from its own field of loadtest's result: given a result
//   whose fields all differ, it returns exactly the expected row (a neighbouring field,
//   such as the mean for p50, can fall within TOLERANCE of a real run)
// - the cluster's row beats the serial one: more answers per second, lower mean latency
// - formatTable() prints both rows side by side, serial first, with the ratio cluster/serial
import { busyMachineReason, coreCount, measureThroughput, referenceFile, startFile, targetFile } from '../../scripts/lib/checks.ts';
import { CountingProxy, type Tally } from '../../scripts/lib/counting-proxy.ts';
import { VerdictError } from '../../scripts/lib/errors.ts';
import { relativeToRepo } from '../../scripts/lib/paths.ts';
import { note, skipTarget, target } from '../../scripts/lib/report.ts';
import type { LoadTestResult } from 'loadtest';
import type { Load, Row } from './compare.ts';

type LessonModule = typeof import('./compare.ts');

interface Run {
  side: 'serial' | 'cluster';
  row: Row;
  tally: Tally;
}

interface Field {
  key: keyof Row;
  label: string;
  // Where loadtest's result has it: named in the verdict when the field is missing.
  source: string;
  unit: keyof typeof TOLERANCE;
  counted: (tally: Tally) => number;
}

const SERIAL_SERVER = referenceFile('01-blocking-server');
// Lesson 2's cluster is enough to measure; npm run compare uses lesson 3's, which also heals.
const CLUSTER_SERVER = referenceFile('02-basic-cluster');
// The published run's shape with fewer requests and a shorter timeout, so the check
// takes seconds: 10 clients, and a rate set in before() to what the published run
// asked of its serial server, 100 per second of the 41 it could serve.
const LOAD: Load = { concurrency: 10, rps: 100, requests: 250, timeoutMs: 1_000 };
const OVERLOAD_FACTOR = 100 / 41;
const CAPACITY_REQUESTS = 100;
// Every request has ended by the time the last one is sent plus the timeout.
const measureDeadlineMs = () => (LOAD.requests / LOAD.rps) * 1000 + LOAD.timeoutMs + 10_000;
// How far a row may be from what the proxy counted: the larger of an absolute and a
// relative difference. The proxy sees a request a moment after loadtest sends it and
// the answer a moment before loadtest reads it, and a request that ends right at the
// timeout can fall on either side of it.
const TOLERANCE = {
  requests: { absolute: 3, relative: 0.02 },
  ms: { absolute: 10, relative: 0.1 },
  seconds: { absolute: 0.1, relative: 0.05 },
  'per second': { absolute: 1, relative: 0.05 },
};
const FIELDS: Field[] = [
  { key: 'errors', label: 'errors', source: 'totalErrors', unit: 'requests', counted: (tally) => tally.failed },
  { key: 'meanLatencyMs', label: 'mean latency', source: 'meanLatencyMs', unit: 'ms', counted: (tally) => tally.meanMs },
  { key: 'effectiveRps', label: 'effective rps', source: '(totalRequests - totalErrors) / elapsedSeconds', unit: 'per second', counted: answerRate },
  { key: 'completed', label: 'completed', source: 'totalRequests', unit: 'requests', counted: finished },
  { key: 'seconds', label: 'duration', source: 'elapsedSeconds', unit: 'seconds', counted: (tally) => tally.seconds },
  { key: 'p50Ms', label: 'p50 latency', source: "percentiles['50']", unit: 'ms', counted: (tally) => tally.p50Ms },
  { key: 'p95Ms', label: 'p95 latency', source: "percentiles['95']", unit: 'ms', counted: (tally) => tally.p95Ms },
  { key: 'p99Ms', label: 'p99 latency', source: "percentiles['99']", unit: 'ms', counted: (tally) => tally.p99Ms },
];
// How far the requests' arrivals may stretch or shrink against requests / rps: the
// rate is loadtest's timer, and this process is busy while it runs.
const SHAPE_TOLERANCE = 0.2;
const LABEL_WIDTH = 14;
const CELL_WIDTH = 12;
// A table cell is rounded for display: this much either way still matches.
const DISPLAY_ROUNDING = 0.5;
const RATIO_ROUNDING = 0.006;
// A result in which no two fields hold the same value (but for loadtest's own aliases,
// totalTimeSeconds and rps), so a row field taken from the wrong one shows which.
const SAMPLE_RESULT: LoadTestResult = {
  url: 'http://127.0.0.1:3000/heavy',
  maxRequests: 500,
  concurrency: 10,
  requestsPerSecond: 100,
  totalRequests: 487,
  totalErrors: 149,
  elapsedSeconds: 12.217,
  totalTimeSeconds: 12.217,
  accumulatedMs: 1486372.7,
  meanLatencyMs: 3052.1,
  maxLatencyMs: 6021,
  minLatencyMs: 16,
  effectiveRps: 40,
  rps: 40,
  percentiles: { '50': 2750, '90': 4650, '95': 4810, '99': 5320 },
  errorCodes: { '-1': 149 },
  histogramMs: {},
};
const SAMPLE_ROW: Row = {
  errors: 149,
  meanLatencyMs: 3052.1,
  effectiveRps: (487 - 149) / 12.217,
  completed: 487,
  seconds: 12.217,
  p50Ms: 2750,
  p95Ms: 4810,
  p99Ms: 5320,
};
// Where a wrong value in a row from SAMPLE_RESULT came from.
const SAMPLE_SOURCES: [string, number][] = [
  ...(['maxRequests', 'concurrency', 'requestsPerSecond', 'totalRequests', 'totalErrors', 'elapsedSeconds', 'meanLatencyMs', 'maxLatencyMs', 'minLatencyMs', 'effectiveRps'] as const).map(
    (key): [string, number] => [`loadtest's ${key}`, SAMPLE_RESULT[key]],
  ),
  ...(['50', '90', '95', '99'] as const).map((key): [string, number] => [`percentiles['${key}']`, SAMPLE_RESULT.percentiles[key] as number]),
  ['totalRequests - totalErrors', SAMPLE_RESULT.totalRequests - SAMPLE_RESULT.totalErrors],
  ['totalRequests / elapsedSeconds', SAMPLE_RESULT.totalRequests / SAMPLE_RESULT.elapsedSeconds],
];

describe('lesson 4: the load-test comparison', function () {
  let serial: Run;
  let cluster: Run;

  before(async function () {
    const server = await startFile(SERIAL_SERVER);
    try {
      const capacity = (await measureThroughput(server, CAPACITY_REQUESTS)).rps;
      LOAD.rps = Math.ceil(capacity * OVERLOAD_FACTOR);
      note(`the lesson-1 server serves about ${Math.round(capacity)} /heavy per second here: the load is sent at ${LOAD.rps} per second (${OVERLOAD_FACTOR.toFixed(1)} ×, as in the published run)`);
    } finally {
      await server.stop();
    }
  });

  it('measures the serial server with loadTest: a row with every field', async function () {
    serial = await measureServer('serial', SERIAL_SERVER);
  });

  it('measures the cluster with loadTest: a row with every field', async function () {
    cluster = await measureServer('cluster', CLUSTER_SERVER);
  });

  it('agrees with what the check counted between loadtest and each server', function () {
    note(`${''.padEnd(LABEL_WIDTH)}${['serial', 'counted', 'cluster', 'counted'].map((title) => title.padStart(CELL_WIDTH)).join('')}`);
    for (const field of FIELDS) {
      const cells = [serial, cluster].map((run) => {
        const [value, counted] = [run.row[field.key], field.counted(run.tally)];
        const mark = agrees(value, counted, field.unit) ? '✔' : '✘';
        return `${formatNumber(value).padStart(CELL_WIDTH)}${`${formatNumber(counted)} ${mark}`.padStart(CELL_WIDTH)}`;
      });
      note(`${field.label.padEnd(LABEL_WIDTH)}${cells.join('')}`);
    }
    note(`tolerance: ${Object.entries(TOLERANCE).map(([unit, { absolute, relative }]) => `${unit} ±max(${absolute}, ${relative * 100}%)`).join(', ')}`);
    for (const run of [serial, cluster]) assertAgrees(run);
  });

  it("fills each field of the row from its own field of loadtest's result", async function () {
    const lesson = await importLesson();
    const row: Partial<Record<keyof Row, unknown>> = (await callLearner('toRow(result)', () => lesson.toRow(structuredClone(SAMPLE_RESULT)))) ?? {};
    note(`a result with totalRequests ${SAMPLE_RESULT.totalRequests}, totalErrors ${SAMPLE_RESULT.totalErrors}, meanLatencyMs ${SAMPLE_RESULT.meanLatencyMs}, percentiles 50/90/95/99 ${Object.values(SAMPLE_RESULT.percentiles).join('/')}`);
    for (const field of FIELDS) {
      const [value, expected] = [row[field.key], SAMPLE_ROW[field.key]];
      if (typeof value === 'number' && Math.abs(value - expected) <= DISPLAY_ROUNDING) continue;
      const source = typeof value === 'number' && SAMPLE_SOURCES.find(([, candidate]) => Math.abs(value - candidate) <= DISPLAY_ROUNDING)?.[0];
      const shown = typeof value === 'number' ? formatNumber(value) : String(value);
      throw new VerdictError(`toRow(result) sets ${field.key} to ${shown}${source ? `, which is ${source}` : ''}: expected ${formatNumber(expected)}, from ${field.source}`);
    }
    note(`toRow() took each of ${FIELDS.map((field) => field.key).join(', ')} from its own field`);
  });

  it('finds the cluster faster than the serial server', async function () {
    let [serialRow, clusterRow] = [serial.row, cluster.row];
    if (coreCount() < 2) return skipTarget(describePair(clusterRow, serialRow), 'this machine has 1 core, and a cluster cannot beat one process on one core');
    if (!beats(clusterRow, serialRow)) {
      // Both rows agree with the proxy, so something else was using the CPU during one run.
      note(`first pair: cluster ${formatNumber(clusterRow.effectiveRps)} against serial ${formatNumber(serialRow.effectiveRps)} answers per second: measuring the pair again`);
      serialRow = (await measureServer('serial', SERIAL_SERVER)).row;
      clusterRow = (await measureServer('cluster', CLUSTER_SERVER)).row;
    }
    const speedup = clusterRow.effectiveRps / serialRow.effectiveRps;
    const faster = `effective rps: cluster ${formatNumber(clusterRow.effectiveRps)} > serial ${formatNumber(serialRow.effectiveRps)} (${speedup.toFixed(2)}×)`;
    const sooner = `mean latency: cluster ${formatNumber(clusterRow.meanLatencyMs)} ms < serial ${formatNumber(serialRow.meanLatencyMs)} ms`;
    const wins = beats(clusterRow, serialRow);
    // Both rows agree with the proxy, so a cluster that lost shared the CPU with something else.
    const busy = !wins && (await busyMachineReason());
    if (busy) return skipTarget(describePair(clusterRow, serialRow), busy);
    target(faster, clusterRow.effectiveRps > serialRow.effectiveRps, 'the cluster answered no more requests per second than one process, although both rows agree with what the check counted');
    target(sooner, clusterRow.meanLatencyMs < serialRow.meanLatencyMs, 'the cluster answered no sooner than one process, although both rows agree with what the check counted');
  });

  it('prints the two rows side by side, serial first, with the ratio cluster/serial', async function () {
    const lesson = await importLesson();
    const table = await callLearner('formatTable(serial, cluster)', () => lesson.formatTable(serial.row, cluster.row));
    if (typeof table !== 'string' || table.trim() === '') {
      throw new VerdictError(`formatTable(serial, cluster) returned ${JSON.stringify(table)}, expected the table as a string`);
    }
    for (const line of table.split('\n')) note(line);
    for (const field of FIELDS) assertTableLine(table, field, serial.row, cluster.row);
  });
});

async function importLesson(): Promise<LessonModule> {
  const file = targetFile();
  const lesson = await callLearner<Partial<LessonModule>>(`importing ${relativeToRepo(file)}`, () => import(file));
  for (const name of ['measure', 'toRow', 'formatTable'] as const) {
    if (typeof lesson[name] !== 'function') throw new VerdictError(`${relativeToRepo(file)} exports no function ${name}(): keep the starter's export`);
  }
  return lesson as LessonModule;
}

// Runs the learner's code; a throw becomes the verdict, without the course's stack trace.
async function callLearner<T>(call: string, run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new VerdictError(`${call} threw: ${error instanceof Error ? error.message : String(error)}`);
  }
}

// One server at a time, as npm run compare does: a serial server still works through
// the requests its clients gave up on after the load ends, and would slow the next run.
async function measureServer(side: Run['side'], file: string): Promise<Run> {
  const server = await startFile(file);
  const proxy = await CountingProxy.start(server.url('/'));
  try {
    return await measureThrough(side, proxy);
  } finally {
    await proxy.close();
    await server.stop();
  }
}

async function measureThrough(side: Run['side'], proxy: CountingProxy): Promise<Run> {
  const lesson = await importLesson();
  const url = proxy.url('/heavy');
  const reported = { finishes: 0, failed: 0 };
  const onFinish = (failed: boolean) => {
    reported.finishes += 1;
    if (failed) reported.failed += 1;
  };
  const measuring = callLearner(`measure("${url}", load)`, () => lesson.measure(url, LOAD, onFinish));
  const row = await withDeadline(measuring, measureDeadlineMs(), `measure() had not returned ${measureDeadlineMs() / 1000} s after it was called: does it await loadTest() with maxRequests?`);
  // The proxy's count is taken the moment measure() returns, as loadtest's was.
  const tally = proxy.tally(LOAD.timeoutMs);
  note(`${side}: ${tally.received} requests reached the server; ${tally.answered} answered within ${LOAD.timeoutMs} ms, ${tally.failed} not`);
  if (tally.received === 0) {
    throw new VerdictError(`measure() sent no request to the URL it was given (${url}), yet returned ${JSON.stringify(row)}: a row must come from loadTest()'s result`);
  }
  assertShape(side, tally);
  assertEveryField(side, row);
  assertCountedOnce(side, row, tally);
  assertReported(side, reported, row, tally);
  return { side, row, tally };
}

// onFinish against what the proxy counted: once for every request that ended, told
// whether it failed. Failures that loadtest's own count agrees with are judged with the
// row's errors in assertAgrees: there the proxy and loadtest differ, not onFinish.
function assertReported(side: Run['side'], reported: { finishes: number; failed: number }, row: Row, tally: Tally): void {
  if (!agrees(reported.finishes, finished(tally), 'requests')) {
    throw new VerdictError(
      `onFinish was called ${reported.finishes} times, expected once for each of the ${finished(tally)} requests to the ${side} server that ended, answered or given up on: call it from loadtest's statusCallback, which runs for every one`,
    );
  }
  if (!agrees(reported.failed, tally.failed, 'requests') && !agrees(reported.failed, row.errors, 'requests')) {
    throw new VerdictError(
      `onFinish was told ${reported.failed} of ${reported.finishes} requests to the ${side} server failed, but the check counted ${tally.failed} failed and ${tally.answered} answered: pass onFinish(error !== null) from statusCallback(error, result), whose error is null for an answer`,
    );
  }
}

function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new VerdictError(message)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function assertEveryField(side: Run['side'], row: unknown): void {
  if (typeof row !== 'object' || row === null) {
    throw new VerdictError(`measure() resolved to ${String(row)} for the ${side} server, expected a row: an object with ${FIELDS.map((field) => field.key).join(', ')}`);
  }
  for (const field of FIELDS) {
    const value = (row as Record<string, unknown>)[field.key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new VerdictError(`the ${side} row's ${field.key} is ${String(value)}, expected a number ≥ 0: loadtest's result has it as ${field.source}`);
    }
  }
}

// The load the check asked for: LOAD.requests requests, sent at LOAD.rps.
function assertShape(side: Run['side'], tally: Tally): void {
  if (tally.received !== LOAD.requests) {
    throw new VerdictError(`${tally.received} requests reached the ${side} server, expected load.requests = ${LOAD.requests}: pass maxRequests: load.requests to loadTest()`);
  }
  const expectedSeconds = (LOAD.requests - 1) / LOAD.rps;
  if (Math.abs(tally.arrivalSeconds - expectedSeconds) > expectedSeconds * SHAPE_TOLERANCE) {
    throw new VerdictError(
      `the ${LOAD.requests} requests reached the ${side} server over ${tally.arrivalSeconds.toFixed(2)} s, expected about ${expectedSeconds.toFixed(2)} s at load.rps = ${LOAD.rps} per second: pass requestsPerSecond: load.rps to loadTest()`,
    );
  }
}

function assertCountedOnce(side: Run['side'], row: Row, tally: Tally): void {
  if (row.completed <= finished(tally) || agrees(row.completed, finished(tally), 'requests') || tally.unfinished === 0) return;
  throw new VerdictError(
    `the ${side} row says ${row.completed} requests completed, but ${finished(tally)} had ended (answered, or given up on after ${LOAD.timeoutMs} ms) when measure() returned, and ${tally.unfinished} were still waiting. ` +
      `loadtest's timeout option counts a late answer as one more completed request, and stops early: give up with requestGenerator: hangUpAfter(load.timeoutMs) instead`,
  );
}

function assertAgrees(run: Run): void {
  const { row, tally, side } = run;
  if (row.errors === 0 && tally.failed > 0 && tally.hungUp === 0) {
    throw new VerdictError(
      `the ${side} row has no errors, but ${tally.failed} requests took longer than load.timeoutMs = ${LOAD.timeoutMs} ms and no client gave up on them: pass requestGenerator: hangUpAfter(load.timeoutMs) to loadTest()`,
    );
  }
  const everyCompleted = row.completed / row.seconds;
  if (row.errors > 0 && !agrees(row.effectiveRps, answerRate(tally), 'per second') && agrees(row.effectiveRps, everyCompleted, 'per second')) {
    throw new VerdictError(
      `the ${side} row's effective rps ${formatNumber(row.effectiveRps)} counts every completed request, errors too; the check counted ${tally.answered} answers in ${tally.seconds.toFixed(2)} s, ${formatNumber(answerRate(tally))} per second. ` +
        `Count only answers: (totalRequests - totalErrors) / elapsedSeconds`,
    );
  }
  if (tally.failed > 0 && !agrees(row.completed, finished(tally), 'requests') && agrees(row.completed, tally.answered, 'requests')) {
    throw new VerdictError(
      `the ${side} row's completed ${row.completed} counts answers only; the check counted ${finished(tally)} requests that ended, ${tally.answered} answered and ${tally.failed} given up on. ` +
        `completed counts both: loadtest's totalRequests`,
    );
  }
  for (const field of FIELDS) {
    const [value, counted] = [row[field.key], field.counted(tally)];
    if (agrees(value, counted, field.unit)) continue;
    throw new VerdictError(
      `the ${side} row's ${field.label} is ${formatNumber(value)}, but the check counted ${formatNumber(counted)}: take it from loadtest's result (${field.source}), measured on the same run`,
    );
  }
}

function assertTableLine(table: string, field: Field, serialRow: Row, clusterRow: Row): void {
  const line = table.split('\n').find((text) => text.trimStart().toLowerCase().startsWith(field.label));
  if (!line) throw new VerdictError(`no line of the table starts with "${field.label}": print one line for each entry of METRICS, its label first`);
  const numbers = (line.trimStart().slice(field.label.length).match(/\d+(?:\.\d+)?/g) ?? []).map(Number);
  const [serialValue, clusterValue] = [serialRow[field.key], clusterRow[field.key]];
  const shows = (shown: number | undefined, value: number) => shown !== undefined && Math.abs(shown - value) <= Math.max(DISPLAY_ROUNDING, value * 0.005);
  if (!shows(numbers[0], serialValue) || !shows(numbers[1], clusterValue)) {
    const swapped = shows(numbers[0], clusterValue) && shows(numbers[1], serialValue);
    throw new VerdictError(
      `the "${field.label}" line reads ${numbers.slice(0, 2).join(', then ')}: expected the serial value ${formatNumber(serialValue)} first, then the cluster's ${formatNumber(clusterValue)}${swapped ? '. Are the columns swapped?' : ''}`,
    );
  }
  const ratio = clusterValue / serialValue;
  if (!Number.isFinite(ratio)) return;
  const shownRatio = numbers[2];
  if (shownRatio === undefined || Math.abs(shownRatio - ratio) > Math.max(RATIO_ROUNDING, ratio * 0.01)) {
    const inverted = shownRatio !== undefined && Math.abs(shownRatio - 1 / ratio) <= Math.max(RATIO_ROUNDING, (1 / ratio) * 0.01);
    throw new VerdictError(
      `the "${field.label}" line shows the ratio ${shownRatio ?? 'nowhere'}, expected cluster/serial = ${ratio.toFixed(2)}×${inverted ? ' (it shows serial/cluster)' : ''}: use formatRatio(cluster value, serial value)`,
    );
  }
}

function agrees(value: number, counted: number, unit: keyof typeof TOLERANCE): boolean {
  const { absolute, relative } = TOLERANCE[unit];
  return Math.abs(value - counted) <= Math.max(absolute, relative * Math.abs(counted));
}

// The two rows' figures, without the targets' inequalities, which may not hold.
function describePair(cluster: Row, serial: Row): string {
  const speedup = (cluster.effectiveRps / serial.effectiveRps).toFixed(2);
  return `effective rps: cluster ${formatNumber(cluster.effectiveRps)}, serial ${formatNumber(serial.effectiveRps)} (${speedup}×); mean latency: cluster ${formatNumber(cluster.meanLatencyMs)} ms, serial ${formatNumber(serial.meanLatencyMs)} ms`;
}

function beats(cluster: Row, serial: Row): boolean {
  return cluster.effectiveRps > serial.effectiveRps && cluster.meanLatencyMs < serial.meanLatencyMs;
}

function finished(tally: Tally): number {
  return tally.answered + tally.failed;
}

function answerRate(tally: Tally): number {
  return tally.seconds > 0 ? tally.answered / tally.seconds : 0;
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  return Number.isInteger(value) || Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(value < 10 ? 2 : 1);
}
