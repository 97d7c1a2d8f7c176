// Lesson 1 checks. They verify that:
// - /heavy answers 200 with the pid and the right result of computeHeavy(HEAVY_ROUNDS)
// - every /heavy computes: the server spends CPU on each, not a saved result
// - /light answers 200 with the pid; any other path answers 404
// - every answer comes from one process: the one the check started
// - /light waits behind /heavy: during a /heavy load it takes longer than two /heavy
// - one /crash takes the whole server down
// - stopping the server leaves no process behind
import { assert } from 'chai';
import { computeHeavy } from '../../common/heavy.ts';
import { heavyRounds, TARGET_HEAVY_MS } from '../../scripts/lib/calibrate.ts';
import { LIGHT_LOAD_CONCURRENCY, lightUnderLoad, probeLight, startTarget } from '../../scripts/lib/checks.ts';
import { get, pidOf, samplePids } from '../../scripts/lib/http.ts';
import { formatMs, note, target } from '../../scripts/lib/report.ts';
import type { ServerProcess } from '../../scripts/lib/server-process.ts';

const PID_SAMPLES = 20;
// CPU time is counted in 10 ms ticks: 30 /heavy of about 15 ms each are 45 ticks, and a
// server that returns a saved result spends a tick or two on all 30. The share allows for
// a calibration made while other programs ran, which makes one /heavy cheaper than 15 ms.
const CPU_SAMPLES = 30;
const MIN_CPU_SHARE = 0.3;
const MIN_HEAVIES_WAITED = 2;
const EXIT_WAIT_MS = 3_000;

describe('lesson 1: a blocking server', function () {
  let server: ServerProcess;

  before(async function () {
    server = await startTarget();
  });

  after(async function () {
    await server?.stop();
  });

  it('answers /heavy with its pid and the result of computeHeavy', async function () {
    const answer = await get(server.url('/heavy'));
    assert(answer.status === 200, `GET /heavy answered ${answer.status}, expected 200`);
    const expected = { pid: server.pid, result: computeHeavy(heavyRounds()) };
    assert(JSON.stringify(answer.json) === JSON.stringify(expected), `GET /heavy answered ${answer.body}, expected ${JSON.stringify(expected)}`);
  });

  it('computes computeHeavy for every /heavy', async function () {
    // CPU time, not wall time: other programs can slow a request down, never make it cost
    // the server CPU it did not spend.
    const before = server.cpuMs();
    for (let i = 0; i < CPU_SAMPLES; i++) await get(server.url('/heavy'));
    const perHeavy = (server.cpuMs() - before) / CPU_SAMPLES;
    target(
      `server CPU time per /heavy, over ${CPU_SAMPLES}: ${formatMs(perHeavy)} ≥ ${MIN_CPU_SHARE} × one computeHeavy (${TARGET_HEAVY_MS} ms)`,
      perHeavy >= MIN_CPU_SHARE * TARGET_HEAVY_MS,
      '/heavy used almost no CPU: it must run computeHeavy(config.heavyRounds) for every request, not answer with a result saved from an earlier one',
    );
  });

  it('answers /light with its pid', async function () {
    const answer = await get(server.url('/light'));
    assert(answer.status === 200, `GET /light answered ${answer.status}, expected 200`);
    assert(pidOf(answer) === server.pid, `GET /light answered ${answer.body}, expected {"pid":${server.pid}}`);
  });

  it('answers 404 for any other path', async function () {
    const answer = await get(server.url('/no-such-route'));
    assert(answer.status === 404, `GET /no-such-route answered ${answer.status}, expected 404`);
  });

  it('answers every request from the one process it runs in', async function () {
    const pids = new Set(await samplePids(server.url('/light'), PID_SAMPLES));
    note(`${PID_SAMPLES} requests on fresh connections, answered by pid ${[...pids].join(', ')}`);
    assert(pids.size === 1 && pids.has(server.pid), `pids ${[...pids].join(', ')} answered, expected only ${server.pid}, the process the check started`);
  });

  it('makes /light wait while /heavy keeps the thread busy', async function () {
    const idle = await probeLight(server);
    const busy = await lightUnderLoad(server);
    // Against the calibrated cost of one /heavy on this machine, not a fixed time: with
    // ten /heavy queued on the one thread, /light waits behind several of them.
    const least = MIN_HEAVIES_WAITED * TARGET_HEAVY_MS;
    note(`/light idle: median ${formatMs(idle)}`);
    target(
      `/light during ${LIGHT_LOAD_CONCURRENCY} concurrent /heavy: median ${formatMs(busy)} ≥ ${MIN_HEAVIES_WAITED} × one /heavy (${TARGET_HEAVY_MS} ms)`,
      busy >= least,
      '/light did not wait behind /heavy: in this lesson /heavy computes computeHeavy on the one thread that serves every request',
    );
  });

  it('goes down entirely after one /crash', async function () {
    server.exitExpected = true;
    // A server that swallows the exception never answers /crash: the wait starts as it is sent.
    get(server.url('/crash'), EXIT_WAIT_MS).catch(() => undefined);
    const exit = await Promise.race([server.exited, sleep(EXIT_WAIT_MS).then(() => null)]);
    assert(exit !== null, `the server was still running ${EXIT_WAIT_MS / 1000} s after GET /crash: throw an Error from a setTimeout callback`);
    const light = await get(server.url('/light')).then(
      (answer) => `answered ${answer.status}`,
      (error: Error) => error.message,
    );
    note(`after one /crash: process exited with code ${exit!.code}; GET /light: ${light.replace('GET /light: ', '')}`);
    assert(exit!.code !== 0, `the process exited with code ${exit!.code}, expected a non-zero code from an uncaught exception`);
    // Node prints an uncaught exception and its stack on stderr; process.exit() prints nothing.
    assert(/Error/.test(server.stderr), `the process exited without an uncaught exception on stderr: throw an Error from a setTimeout callback rather than call process.exit()`);
  });

  it('leaves no process behind when stopped', async function () {
    const killed = await server.stop();
    assert(killed.length === 0, `pids ${killed.join(', ')} ignored SIGTERM and needed SIGKILL`);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
