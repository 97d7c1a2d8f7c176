// Lesson 9 checks. They verify that, with WORKERS=2:
// - every request gets one JSON line on stdout, with the pid that answered it, its worker
//   and its request id: the client's x-request-id when it sent one, else one made, unique
//   across workers, and echoed in the answer; every line of stdout is JSON
// - the primary's METRICS_PORT counts every answered request exactly once: the summed
//   http_requests_total rises by exactly the requests answered, and each worker's series
//   by the requests its pid answered; the shared port serves no metrics
// - a /crash midway loses no count: scraped every 50 ms, the total never falls and ends
//   up by exactly the requests answered; the crashed worker's series go; the crash's line
//   and the primary's crash line carry the crashing request's id
// - a scrape is answered while a worker hangs, and the hung worker's series go once it
//   is killed
// - POST /workers/<pid>/inspect opens an inspector on that worker alone, on 127.0.0.1: the
//   check attaches to the URL the primary logged, evaluates process.pid and gets that pid;
//   the other worker listens on nothing; requests are answered meanwhile; a second worker
//   asked gets a port of its own; once the server stops, no inspector port is left open
// - with the primary started with --inspect=127.0.0.1:P while the check holds P+1 and P+2,
//   no worker exits with code 12, and each has its own inspector port
// - POST /workers/<pid>/profile?ms=2000, under a /heavy load, writes a .cpuprofile named by
//   that pid, of about 2 s, whose most self time is the /heavy computation
//
// Sockets are read from /proc (scripts/lib/listening-sockets.ts): where there is none, the
// checks that need them say so and skip. Every wait is bounded. A failure names the task
// of the lesson's README (and the starter's numbered TODO) that it points to.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { assert } from 'chai';
import { heavyRounds } from '../../scripts/lib/calibrate.ts';
import { targetFile } from '../../scripts/lib/checks.ts';
import { isProfile, NOT_CODE, selfTimes } from '../../scripts/lib/cpuprofile.ts';
import { get, pidOf, send, type HttpAnswer } from '../../scripts/lib/http.ts';
import { evaluateOver } from '../../scripts/lib/inspector-client.ts';
import { canListSockets, listeningPorts } from '../../scripts/lib/listening-sockets.ts';
import { runLoad } from '../../scripts/lib/load.ts';
import { hasSeries, parseMetrics, sumOf, type Sample } from '../../scripts/lib/metrics-text.ts';
import { canConnect, findFreePort } from '../../scripts/lib/ports.ts';
import { formatMs, note, target } from '../../scripts/lib/report.ts';
import { startServer, type ServerProcess } from '../../scripts/lib/server-process.ts';

const WORKERS = 2;
const HANG_TIMEOUT_MS = 1_500;
const CONTROL_HOST = '127.0.0.1';
const LOGGED_REQUESTS = 200;
const UNNAMED_REQUESTS = 20;
const COUNTED_REQUESTS = 200;
const CRASH_SIDE_REQUESTS = 50;
const BATCH = 10;
// How long a count may take to reach the primary after its answer reached the check.
const COUNT_SETTLE_MS = 1_000;
const METRICS_WAIT_MS = 3_000;
const SCRAPE_TIMEOUT_MS = 3_000;
const SCRAPE_INTERVAL_MS = 50;
// A scrape answered from the primary's memory takes milliseconds, whatever a worker does.
const SCRAPE_DURING_HANG_MS = 1_000;
const HANG_SETTLE_MS = 300;
// The hung worker is killed by the heartbeat (common/heartbeat.ts) within about 2 s.
const HUNG_GONE_MS = HANG_TIMEOUT_MS + 3_000;
const POOL_WAIT_MS = 5_000;
const SERIES_GONE_MS = 1_000;
const VITALS_WAIT_MS = 3_000;
const ASK_TIMEOUT_MS = 3_000;
const ATTACH_TIMEOUT_MS = 5_000;
const MEANWHILE_REQUESTS = 20;
const BOOT_WATCH_MS = 3_000;
const PROFILE_MS = 2_000;
const PROFILE_LOAD_LEAD_MS = 1_000;
const PROFILE_LOAD_CONCURRENCY = 2 * WORKERS;
const PROFILE_LOAD_REQUESTS = 2_000;
const PROFILE_LOAD_SECONDS = 5;
// Where the /heavy computation shows in a profile: as computeHeavy, or, when V8 inlined it
// into the route that calls it before the profile began, as that route's handler.
const HEAVY_FRAMES = [
  { functionName: 'computeHeavy', file: path.join('common', 'heavy.ts') },
  { functionName: 'handleRequest', file: path.join('common', 'worker.ts') },
];
const HEAVY_SHARE = 0.5;
const PORT_ATTEMPTS = 20;

interface LogLine {
  pid?: number;
  worker?: number;
  reqId?: string;
  route?: string;
  status?: number;
  durationMs?: number;
  event?: string;
  url?: string;
  code?: number;
  workerPid?: number;
  msg?: string;
}

// Where every server of the check writes its profiles; removed at the end.
const PROFILE_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'lesson-9-profiles-'));

describe('lesson 9: seeing inside a cluster', function () {
  after(function () {
    fs.rmSync(PROFILE_DIR, { recursive: true, force: true });
  });

  describe(`logs and metrics, WORKERS=${WORKERS}`, function () {
    let server: ServerProcess;
    let control: Control;

    before(async function () {
      ({ server, control } = await startObserved());
    });

    after(async function () {
      await server?.stop();
    });

    it('writes one JSON line per request, with its request id and the pid that answered it', async function () {
      const ids = Array.from({ length: LOGGED_REQUESTS }, (_, i) => `check-${i + 1}`);
      const named = await sendInBatches(ids.map((id) => () => send('GET', server.url('/light'), undefined, false, { 'x-request-id': id })));
      const unnamed = await sendInBatches(Array.from({ length: UNNAMED_REQUESTS }, () => () => get(server.url('/light'))));
      assertAllAnswered(named, 'GET /light');
      assertAllAnswered(unnamed, 'GET /light');
      for (const [i, answer] of named.entries()) {
        const echoed = answer.headers['x-request-id'];
        assert(echoed !== undefined, `sent x-request-id ${ids[i]}, and the answer carried no x-request-id: echo the request's id with res.setHeader('x-request-id', …) before the routes answer (task 1)`);
        assert(echoed === ids[i], `sent x-request-id ${ids[i]}, got back ${echoed}: keep the client's id when it sent one (and it matches CLIENT_REQUEST_ID) (task 1)`);
      }
      const madeIds = unnamed.map((answer) => String(answer.headers['x-request-id'] ?? ''));
      assert(madeIds.every((id) => id !== ''), `a request sent with no x-request-id got none back: make one with randomUUID() and echo it (task 1)`);
      await sleep(100);
      const { lines, notJson } = parseLog(server.stdout);
      assert(notJson.length === 0, `${notJson.length} of ${lines.length + notJson.length} lines of stdout are not JSON, such as: ${notJson[0]}: write every line with the pino logger (log), not console.log (task 2)`);
      const byId = groupBy(lines.filter((line) => line.reqId !== undefined && line.route !== undefined), (line) => line.reqId!);
      for (const id of new Set(madeIds)) {
        const holders = unnamed.filter((answer) => answer.headers['x-request-id'] === id).map((answer) => pidOf(answer));
        assert(
          holders.length === 1,
          `request id ${id} was given to ${holders.length} requests, answered by pids ${[...new Set(holders)].join(', ')}: a counter starts again in every process, so two workers hand out the same ids; use randomUUID() (task 1)`,
        );
      }
      const all = [...named.map((answer, i) => ({ id: ids[i], answer })), ...unnamed.map((answer, i) => ({ id: madeIds[i], answer }))];
      for (const { id, answer } of all) {
        const found = byId.get(id) ?? [];
        assert(found.length > 0, `no line on stdout has reqId ${id}: when res emits 'close', write one line with log.info({ reqId, method, route, status, durationMs }, …) (task 2)`);
        assert(found.length === 1, `${found.length} lines have reqId ${id}: write one per request, when res emits 'close' (task 2)`);
        const [line] = found;
        assert(line.pid !== undefined, `the line for request ${id} has no pid: pino's default base gives { pid, hostname }, and a base of your own replaces it; name the worker with log.child({ worker }) (task 2)`);
        assert(line.pid === pidOf(answer), `the line for request ${id} says pid ${line.pid}, but pid ${pidOf(answer)} answered it (task 2)`);
        assert(typeof line.worker === 'number', `the line for request ${id} has no worker: name the worker (cluster.worker.id) on every line with log.child({ worker }) (task 2)`);
        assert(line.status === 200 && line.route === '/light', `the line for request ${id} says route ${line.route}, status ${line.status}; expected /light, 200 (task 2)`);
        assert(typeof line.durationMs === 'number' && line.durationMs >= 0, `the line for request ${id} has no durationMs (task 2)`);
      }
      const pids = new Set(all.map(({ answer }) => pidOf(answer)));
      note(`${all.length} requests, ${LOGGED_REQUESTS} with an x-request-id of the check's and ${UNNAMED_REQUESTS} without, answered by pids ${[...pids].join(', ')}`);
      note(`for example: ${JSON.stringify(byId.get(ids[0])![0])}`);
      note(`${all.length} of ${all.length} requests have exactly one line, with their id and the pid that answered; the ${UNNAMED_REQUESTS} ids made for requests that sent none are distinct`);
    });

    it(`counts every answered request once, in the primary's total and per worker, on METRICS_PORT`, async function () {
      const shared = await get(server.url('/metrics'));
      assert(shared.status === 404, `GET /metrics on the shared port ${server.port} answered ${shared.status}: the workers serve only the contract's routes; metrics come from the primary on METRICS_PORT (task 3)`);
      const before = await control.settledScrape();
      const answers = await sendInBatches(Array.from({ length: COUNTED_REQUESTS }, () => () => get(server.url('/light'))));
      assertAllAnswered(answers, 'GET /light');
      const answeredBy = countBy(answers.map((answer) => pidOf(answer)!));
      const expected = sumOf(before, 'http_requests_total') + COUNTED_REQUESTS;
      const after = await control.scrapeUntil((samples) => sumOf(samples, 'http_requests_total') === expected, COUNT_SETTLE_MS);
      assert(hasSeries(after, 'http_requests_total'), `no http_requests_total on METRICS_PORT ${control.port}: count each Answered in the primary with total.inc() (task 3)`);
      const total = sumOf(after, 'http_requests_total') - sumOf(before, 'http_requests_total');
      const again = await Promise.all([control.scrape(), control.scrape(), control.scrape()]);
      const totals = [after, ...again].map((samples) => sumOf(samples, 'http_requests_total'));
      const oneWorkerEach = new Set(totals).size > 1 || [...answeredBy.values()].some((count) => Math.abs(total - count) <= 2);
      target(
        `http_requests_total up by ${total} (target: exactly the ${COUNTED_REQUESTS} answered)`,
        total === COUNTED_REQUESTS,
        oneWorkerEach && total < COUNTED_REQUESTS
          ? `each scrape counted one worker's requests (totals ${totals.join(', ')}, answered ${COUNTED_REQUESTS}: ${describeCounts(answeredBy)}): a worker counts only itself, and the port it serves on deals scrapes out like any connection; count in the primary and serve from there (task 3)`
          : `the primary's http_requests_total rose by ${total} while ${COUNTED_REQUESTS} requests were answered: count each answer once, when its Answered message arrives (task 3)`,
      );
      for (const [pid, count] of answeredBy) {
        const series = sumOf(after, 'worker_http_requests_total', { pid: String(pid) }) - sumOf(before, 'worker_http_requests_total', { pid: String(pid) });
        target(
          `worker ${pid}: up by ${series} in worker_http_requests_total, ${count} answered (target: equal)`,
          series === count,
          `worker_http_requests_total{pid="${pid}"} rose by ${series}, but that pid answered ${count}: label byWorker with the worker's id and its process's pid (task 3)`,
        );
      }
      const vitals = await control.scrapeUntil((samples) => [...answeredBy.keys()].every((pid) => hasSeries(samples.filter((sample) => sample.labels.pid === String(pid)), 'nodejs_eventloop_lag_max_seconds')), VITALS_WAIT_MS);
      for (const pid of answeredBy.keys()) {
        assert(vitals.some((sample) => sample.name === 'nodejs_eventloop_lag_max_seconds' && sample.labels.pid === String(pid)), `no nodejs_eventloop_lag_max_seconds for worker ${pid}: keep sendVitals() in each worker and watchVitals(registry) in the primary`);
      }
      note(`served on 127.0.0.1:${control.port} with content-type ${control.contentType}; GET /metrics on the shared port: ${shared.status}`);
    });

    it('keeps every answered request in the total across a /crash, and logs the crash with its request id', async function () {
      const start = await control.settledScrape();
      const workersBefore = server.workerPids();
      const sampler = control.sample();
      const first = await sendInBatches(Array.from({ length: CRASH_SIDE_REQUESTS }, () => () => get(server.url('/light'))));
      const crash = await send('GET', server.url('/crash'), undefined, false, { 'x-request-id': 'check-crash' }).catch((error: Error) => error);
      const crashedPid = await waitForOneGone(server, workersBefore, POOL_WAIT_MS);
      assert(crashedPid !== undefined, `no worker exited within ${POOL_WAIT_MS / 1000} s of GET /crash (workers ${workersBefore.join(', ')}): keep startWorker(config, …) in each worker`);
      const probes = await waitForPool(server, WORKERS, POOL_WAIT_MS);
      const second = await sendInBatches(Array.from({ length: CRASH_SIDE_REQUESTS }, () => () => get(server.url('/light'))));
      const answered = [...first, ...second].filter((answer) => answer.status === 200).length + (crash instanceof Error ? 0 : 1) + probes;
      const expected = sumOf(start, 'http_requests_total') + answered;
      const end = await control.scrapeUntil((samples) => sumOf(samples, 'http_requests_total') === expected, COUNT_SETTLE_MS);
      const totals = [sumOf(start, 'http_requests_total'), ...(await sampler.stop()), sumOf(end, 'http_requests_total')];
      const falls = totals.flatMap((value, i) => (i > 0 && value < totals[i - 1] ? [[totals[i - 1], value]] : []));
      note(`${CRASH_SIDE_REQUESTS} GET /light, a GET /crash (${crash instanceof Error ? crash.message : `answered ${crash.status}`}) on worker ${crashedPid}, then ${CRASH_SIDE_REQUESTS} more once ${WORKERS} workers served; ${totals.length} scrapes, every ${SCRAPE_INTERVAL_MS} ms`);
      target(
        `${falls.length} of ${totals.length} scrapes fell (target: none)`,
        falls.length === 0,
        `http_requests_total fell from ${falls[0]?.[0]} to ${falls[0]?.[1]} when worker ${crashedPid} exited: ${(falls[0]?.[0] ?? 0) - (falls[0]?.[1] ?? 0)} answered requests vanished from the total. Count them in the primary as they arrive (total.inc()), never as a sum of the live workers' counts, and remove only byWorker's series (task 4)`,
      );
      const rise = sumOf(end, 'http_requests_total') - sumOf(start, 'http_requests_total');
      target(
        `http_requests_total up by ${rise} (target: the ${answered} answered, the /crash's 500 and ${probes} probes among them)`,
        rise === answered,
        rise < answered - 1
          ? `http_requests_total rose by ${rise} while ${answered} requests were answered: ${answered - rise} answered requests vanished from the total when worker ${crashedPid} exited. Count them in the primary as they arrive (total.inc()), never as a sum of the live workers' counts (task 4)`
          : `http_requests_total rose by ${rise} while ${answered} requests were answered, the /crash's 500 among them: count every answer, whatever its status, when res emits 'finish' (task 3)`,
      );
      const leftSeries = (await control.scrapeUntil((samples) => !samples.some((sample) => sample.labels.pid === String(crashedPid)), SERIES_GONE_MS)).filter((sample) => sample.labels.pid === String(crashedPid));
      target(
        `series of worker ${crashedPid}, which exited: ${leftSeries.length} (target: none)`,
        leftSeries.length === 0,
        `still serves the series of worker ${crashedPid}, which exited (${leftSeries[0]?.name}): remove() them when it disconnects; the total keeps its answers (task 4)`,
      );
      const { lines } = parseLog(server.stdout);
      const crashLine = lines.find((line) => line.reqId === 'check-crash' && line.route === '/crash');
      assert(crashLine, `no line with reqId check-crash and route /crash: a request a worker crashed on is logged too, when res emits 'close' (task 2)`);
      assert(crashLine.status === 500 && crashLine.pid === crashedPid, `the line of the /crash says status ${crashLine.status}, pid ${crashLine.pid}; expected 500 from worker ${crashedPid} (task 2)`);
      const primaryLine = lines.find((line) => line.event === 'crash' && line.pid === server.pid);
      assert(primaryLine?.reqId === 'check-crash', `the primary's crash line ${primaryLine ? `has reqId ${primaryLine.reqId}` : 'is not on stdout'}: the id is echoed with res.setHeader() before the route runs, so the worker's crash report can carry it (task 1)`);
      note(`the crash, as the worker and the primary logged it: ${crashLine.msg} (reqId ${crashLine.reqId}, pid ${crashLine.pid}); ${primaryLine.msg}`);
    });

    it('answers a scrape while a worker hangs, and drops the hung worker once it is killed', async function () {
      await waitForPool(server, WORKERS, POOL_WAIT_MS);
      const workersBefore = server.workerPids();
      const hang = get(server.url('/hang'), HUNG_GONE_MS).catch(() => undefined);
      await sleep(HANG_SETTLE_MS);
      const started = performance.now();
      const scraped = await control.scrape().then(
        () => undefined,
        (error: Error) => error.message,
      );
      const ms = performance.now() - started;
      target(
        `a scrape during the hang answered after ${formatMs(ms)} (target: within ${formatMs(SCRAPE_DURING_HANG_MS)})`,
        scraped === undefined && ms <= SCRAPE_DURING_HANG_MS,
        `${scraped ? `the scrape failed (${scraped})` : `the scrape took ${formatMs(ms)}`} while a worker hung: a primary that asks every worker at scrape time (as prom-client's AggregatorRegistry does) waits for the one that cannot answer; count what workers push instead, not ask every worker at scrape time (task 3)`,
      );
      const hungPid = await waitForOneGone(server, workersBefore, HUNG_GONE_MS);
      await hang;
      assert(hungPid !== undefined, `the hung worker was not killed within ${HUNG_GONE_MS / 1000} s: keep watchHeartbeats() in the primary and sendHeartbeats() in each worker`);
      const left = (await control.scrapeUntil((samples) => !samples.some((sample) => sample.labels.pid === String(hungPid)), SERIES_GONE_MS)).filter((sample) => sample.labels.pid === String(hungPid));
      target(`series of worker ${hungPid}, killed as hung: ${left.length} (target: none)`, left.length === 0, `still serves the series of worker ${hungPid}, killed as hung (${left[0]?.name}): remove() them when it disconnects (task 4)`);
    });
  });

  describe(`a debugger and a profile on the worker asked for, WORKERS=${WORKERS}`, function () {
    let server: ServerProcess;
    let control: Control;
    const inspectorPorts = new Set<number>();

    before(async function () {
      ({ server, control } = await startObserved());
      await waitForPool(server, WORKERS, POOL_WAIT_MS);
    });

    after(async function () {
      await server?.stop();
    });

    it('opens an inspector on that worker alone, on 127.0.0.1, and on another asked for next', async function () {
      if (!canListSockets()) this.skip();
      const [asked, other] = server.workerPids();
      for (const pid of [asked, other]) {
        const ports = listeningPorts(pid);
        assert(ports.length === 0, `worker ${pid} has an inspector open (127.0.0.1:${ports.join(', ')}) though none was asked for: open it only when the primary asks, in the worker asked for (task 5)`);
      }
      const url = await control.inspect(asked);
      const logged = parseLog(server.stdout).lines.find((line) => line.event === 'inspect' && line.workerPid === asked);
      assert(logged?.url === url, `the primary did not log the URL it answered (${url}): keep startControl() as given`);
      assert(url.startsWith(`ws://${CONTROL_HOST}:`), `worker ${asked}'s inspector is at ${url}, not on ${CONTROL_HOST}: an inspector runs whatever code it is sent, so it listens on 127.0.0.1 only (task 5)`);
      inspectorPorts.add(Number(new URL(url).port));
      const meanwhile = Promise.all(Array.from({ length: MEANWHILE_REQUESTS }, () => get(server.url('/light')).then((answer) => answer.status === 200, () => false)));
      const evaluated = await evaluateOver(url, 'process.pid', ATTACH_TIMEOUT_MS);
      assert(evaluated === asked, `the URL the primary logged for worker ${asked} answered process.pid ${evaluated}${evaluated === server.pid ? ', the primary' : ''}: open the inspector in the worker asked for (task 5)`);
      const served = (await meanwhile).filter(Boolean).length;
      const others = listeningPorts(other);
      assert(others.length === 0, `worker ${other} has an inspector open (127.0.0.1:${others.join(', ')}) though the check asked only for ${asked}: open it when asked, in that worker alone (task 5)`);
      const again = await control.inspect(asked);
      assert(again === url, `asked twice for worker ${asked}, the primary answered ${url}, then ${again}: answer inspector.url() when it is open already (task 5)`);
      note(`worker ${asked}: ${url}; the check attached and evaluated process.pid: ${evaluated}`);
      target(`${served} of ${MEANWHILE_REQUESTS} GET /light answered meanwhile (target: all)`, served === MEANWHILE_REQUESTS, `${MEANWHILE_REQUESTS - served} of ${MEANWHILE_REQUESTS} GET /light failed while the check attached to worker ${asked}'s inspector`);
      const secondUrl = await control.inspect(other).catch((error: Error) => error.message);
      const secondPort = Number(secondUrl.match(/^ws:\/\/[^/]+:(\d+)\//)?.[1]);
      assert(
        Number.isInteger(secondPort),
        `worker ${other}, asked next, opened no inspector (the primary answered: ${secondUrl})${server.stderr.includes('address already in use') ? `; stderr says: ${server.stderr.split('\n').find((line) => line.includes('address already in use'))}` : ''}: a fixed port is taken by the first worker; open port 0, a free one (task 5)`,
      );
      inspectorPorts.add(secondPort);
      const secondPid = await evaluateOver(secondUrl, 'process.pid', ATTACH_TIMEOUT_MS);
      target(`worker ${other}, asked next: its own port ${secondPort}, process.pid ${secondPid} (target: ${other}, on a port of its own)`, secondPid === other && secondPort !== Number(new URL(url).port), `the URL for worker ${other} answered process.pid ${secondPid} (task 5)`);
    });

    it('profiles that worker under a /heavy load, and finds the /heavy computation on top', async function () {
      const pid = server.workerPids()[0];
      const load = runLoad({ url: server.url('/heavy'), requests: PROFILE_LOAD_REQUESTS, concurrency: PROFILE_LOAD_CONCURRENCY, maxSeconds: PROFILE_LOAD_SECONDS });
      await sleep(PROFILE_LOAD_LEAD_MS);
      const answer = await send('POST', control.url(`/workers/${pid}/profile?ms=${PROFILE_MS}`), PROFILE_MS + ASK_TIMEOUT_MS + 2_000).catch((error: Error) => error);
      const loaded = await load;
      assert(!(answer instanceof Error), `POST /workers/${pid}/profile?ms=${PROFILE_MS} got no answer: ${answer instanceof Error ? answer.message : ''}`);
      assert(answer.status === 200, `POST /workers/${pid}/profile?ms=${PROFILE_MS} answered ${answer.status}: ${answer.body} (task 6)`);
      const file = String((answer.json as { file?: unknown })?.file ?? '');
      assert(fs.existsSync(file), `the profile's path answered, ${file || '(none)'}, is no file: write the profile to config.profileDir and answer its path (task 6)`);
      const named = path.basename(file).match(/^worker-(\d+)-\d+\.cpuprofile$/);
      assert(named, `the profile is named ${path.basename(file)}: name it worker-<pid>-<Date.now()>.cpuprofile, so that DevTools and VS Code open it and a reader knows whose it is (task 6)`);
      assert(Number(named[1]) !== server.pid, `the profile was taken in the primary (pid ${server.pid}), not in worker ${pid}: run the Session in the worker, through answerPrimary(PROFILE, takeProfile) (task 6)`);
      assert(Number(named[1]) === pid, `asked for worker ${pid}, the profile is named for pid ${named[1]} (task 6)`);
      const profile: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      assert(isProfile(profile), `${path.basename(file)} is not a Profiler.Profile: write JSON.stringify(profile), where profile is what Profiler.stop answered (task 6)`);
      const spanMs = (profile.endTime - profile.startTime) / 1000;
      assert(spanMs >= PROFILE_MS / 2 && spanMs <= PROFILE_MS + 2_000, `the profile covers ${formatMs(spanMs)}, asked for ${PROFILE_MS} ms: wait ms between Profiler.start and Profiler.stop (task 6)`);
      const times = selfTimes(profile);
      const code = times.filter((entry) => !NOT_CODE.has(entry.functionName));
      const codeMs = code.reduce((sum, entry) => sum + entry.ms, 0);
      const [top] = code;
      const isHeavy = top && HEAVY_FRAMES.some((frame) => top.functionName === frame.functionName && top.file.endsWith(frame.file));
      note(`${loaded.requests} GET /heavy at concurrency ${PROFILE_LOAD_CONCURRENCY}, ${loaded.errors} failed; profile of worker ${pid}, ${formatMs(spanMs)}: ${path.basename(file)}`);
      note(`most self time: ${code.slice(0, 3).map((entry) => `${entry.functionName}${entry.file ? ` (${path.relative(process.cwd(), entry.file)})` : ''} ${formatMs(entry.ms)}`).join(', ')}; idle ${formatMs(times.find((entry) => entry.functionName === '(idle)')?.ms ?? 0)}`);
      target(
        `${top ? `${top.functionName} ${formatMs(top.ms)}` : 'nothing'} self of ${formatMs(codeMs)} (${Math.round(((top?.ms ?? 0) / Math.max(codeMs, 1)) * 100)} %) (target: the /heavy computation, the most self time, at least ${HEAVY_SHARE * 100} %)`,
        Boolean(isHeavy) && top.ms >= HEAVY_SHARE * codeMs,
        `the profile's most self time is ${top?.functionName ?? 'nothing'}, not the /heavy computation (computeHeavy, or handleRequest where V8 inlined it): profile the worker asked for while it serves, for the ms asked (task 6)`,
      );
      target(`${loaded.errors} of ${loaded.requests} GET /heavy failed while it was profiled (target: none)`, loaded.errors === 0, `${loaded.errors} GET /heavy failed while worker ${pid} was profiled`);
    });

    it('leaves no inspector port open once the server has stopped', async function () {
      if (inspectorPorts.size === 0) this.skip();
      await server.stop();
      const open = [];
      for (const port of inspectorPorts) if (await canConnect(CONTROL_HOST, port)) open.push(port);
      assert(open.length === 0, `ports ${open.join(', ')} still accept connections after the server stopped`);
      note(`inspector ports ${[...inspectorPorts].join(', ')}: closed with their workers`);
    });
  });

  describe(`the primary started with --inspect, WORKERS=${WORKERS}`, function () {
    let server: ServerProcess | undefined;
    const held: net.Server[] = [];

    after(async function () {
      await server?.stop();
      for (const listener of held) listener.close();
    });

    it('gives every worker an inspector port of its own, even where the next ports are taken', async function () {
      if (!canListSockets()) this.skip();
      const primaryPort = await findPortBeforeFree(WORKERS, held);
      const taken = held.map((listener) => (listener.address() as net.AddressInfo).port);
      const started = await startObserved([`--inspect=${CONTROL_HOST}:${primaryPort}`]).catch((error: Error) => error);
      const exits = (stdout: string) => parseLog(stdout).lines.filter((line) => line.event === 'exit' && line.code === 12);
      if (started instanceof Error) {
        assert.fail(`${started.message.includes('code 12') || /address already in use/.test(started.message) ? `workers exited with code 12 at boot: ` : ''}${started.message}`);
      }
      server = started.server;
      await sleep(BOOT_WATCH_MS);
      const died = exits(server.stdout);
      const inUse = server.stderr.split('\n').find((line) => line.includes('address already in use'));
      const fix = `With --inspect, cluster gives worker n the primary's port + n; cluster.setupPrimary({ inspectPort: 0 }) gives each a free one (task 5)`;
      assert(died.length === 0, `worker ${died[0]?.workerPid} exited with code 12 at boot: its inspector port was taken (${inUse ?? `ports ${taken.join(', ')} are held by the check`}). ${fix}`);
      const pids = server.workerPids();
      const ports = pids.map((pid) => listeningPorts(pid));
      const without = pids.filter((_, i) => ports[i].length === 0);
      assert(without.length === 0, `${without.length > 1 ? 'workers' : 'worker'} ${without.join(', ')} started with no inspector: ${inUse ? `its inspector port was taken (stderr: ${inUse})` : 'the primary runs with --inspect, so every worker should have one from the start'}. ${fix}`);
      assert(ports.every((list) => list.length === 1), `each worker should listen on its inspector's port alone; they listen on ${ports.map((list, i) => `${pids[i]}: ${list.join(', ')}`).join('; ')}`);
      const url = await started.control.inspect(pids[0]);
      assert(Number(new URL(url).port) === ports[0][0], `worker ${pids[0]} has its inspector on port ${ports[0][0]}, and the primary answered ${url}: answer inspector.url() when it is open already, rather than open another (task 5)`);
      target(
        `--inspect=${CONTROL_HOST}:${primaryPort}, ports ${taken.join(', ')} held: workers ${pids.join(', ')} on inspector ports ${ports.map((list) => list[0]).join(', ')}, none exited (target: distinct, free ports)`,
        new Set(ports.map((list) => list[0])).size === pids.length,
        `two workers share an inspector port (${ports.map((list) => list[0]).join(', ')}) (task 5)`,
      );
    });
  });
});

interface Control {
  port: number;
  contentType: string;
  url(route: string): string;
  scrape(): Promise<Sample[]>;
  settledScrape(): Promise<Sample[]>;
  scrapeUntil(done: (samples: Sample[]) => boolean, timeoutMs: number): Promise<Sample[]>;
  sample(): { stop(): Promise<number[]> };
  inspect(pid: number): Promise<string>;
}

async function startObserved(nodeFlags: string[] = []): Promise<{ server: ServerProcess; control: Control }> {
  const metricsPort = await findFreePort(CONTROL_HOST);
  const server = await startServer({
    file: targetFile(),
    env: { HEAVY_ROUNDS: String(heavyRounds()), WORKERS: String(WORKERS), HANG_TIMEOUT_MS: String(HANG_TIMEOUT_MS), METRICS_PORT: String(metricsPort), PROFILE_DIR },
    nodeFlags,
    outputLimitChars: 4_000_000,
  });
  const deadline = performance.now() + METRICS_WAIT_MS;
  while (!(await canConnect(CONTROL_HOST, metricsPort)) && performance.now() < deadline) await sleep(SCRAPE_INTERVAL_MS);
  const control: Control = {
    port: metricsPort,
    contentType: '',
    url: (route) => `http://${CONTROL_HOST}:${metricsPort}${route}`,
    async scrape() {
      const answer = await get(control.url('/metrics'), SCRAPE_TIMEOUT_MS).catch((error: Error) => {
        throw new Error(`GET /metrics on METRICS_PORT ${metricsPort}: ${error.message}`);
      });
      if (answer.status !== 200) throw new Error(`GET /metrics on METRICS_PORT ${metricsPort} answered ${answer.status}`);
      control.contentType = String(answer.headers['content-type']);
      return parseMetrics(answer.body);
    },
    async settledScrape() {
      let last = await control.scrape();
      const until = performance.now() + COUNT_SETTLE_MS;
      while (performance.now() < until) {
        await sleep(SCRAPE_INTERVAL_MS * 2);
        const next = await control.scrape();
        if (sumOf(next, 'http_requests_total') === sumOf(last, 'http_requests_total')) return next;
        last = next;
      }
      return last;
    },
    async scrapeUntil(done, timeoutMs) {
      const until = performance.now() + timeoutMs;
      let samples = await control.scrape();
      while (!done(samples) && performance.now() < until) {
        await sleep(SCRAPE_INTERVAL_MS);
        samples = await control.scrape();
      }
      return samples;
    },
    sample() {
      const totals: number[] = [];
      let running = true;
      const loop = (async () => {
        while (running) {
          const samples = await control.scrape().catch(() => undefined);
          if (samples && hasSeries(samples, 'http_requests_total')) totals.push(sumOf(samples, 'http_requests_total'));
          await sleep(SCRAPE_INTERVAL_MS);
        }
      })();
      return {
        async stop() {
          running = false;
          await loop;
          return totals;
        },
      };
    },
    async inspect(pid) {
      const answer = await send('POST', control.url(`/workers/${pid}/inspect`), ASK_TIMEOUT_MS).catch((error: Error) => error);
      assert(!(answer instanceof Error), `POST /workers/${pid}/inspect on METRICS_PORT got no answer: ${answer instanceof Error ? answer.message : ''}`);
      const url = (answer.json as { url?: unknown } | undefined)?.url;
      assert(answer.status === 200 && typeof url === 'string', `POST /workers/${pid}/inspect answered ${answer.status} ${answer.body}: openInspector() opens the worker's inspector and answers inspector.url() (task 5)`);
      return url;
    },
  };
  assert(await canConnect(CONTROL_HOST, metricsPort), `nothing listens on METRICS_PORT ${metricsPort} within ${METRICS_WAIT_MS / 1000} s: keep startControl(config, …) in the primary`);
  return { server, control };
}

function parseLog(stdout: string): { lines: LogLine[]; notJson: string[] } {
  const lines: LogLine[] = [];
  const notJson: string[] = [];
  for (const text of stdout.split('\n')) {
    if (!text.trim()) continue;
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {
      notJson.push(text);
    }
  }
  return { lines, notJson };
}

async function sendInBatches(requests: (() => Promise<HttpAnswer>)[]): Promise<HttpAnswer[]> {
  const answers: HttpAnswer[] = [];
  for (let i = 0; i < requests.length; i += BATCH) {
    answers.push(...(await Promise.all(requests.slice(i, i + BATCH).map((request) => request()))));
  }
  return answers;
}

function assertAllAnswered(answers: HttpAnswer[], what: string): void {
  const failed = answers.filter((answer) => answer.status !== 200);
  assert(failed.length === 0, `${failed.length} of ${answers.length} ${what} answered ${failed[0]?.status}: ${failed[0]?.body}`);
}

function groupBy<T>(items: T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) groups.set(key(item), [...(groups.get(key(item)) ?? []), item]);
  return groups;
}

function countBy(values: number[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

function describeCounts(counts: Map<number, number>): string {
  return [...counts].map(([pid, count]) => `${count} by ${pid}`).join(', ');
}

// The pid of one of `before` that has left the process table, once one has.
async function waitForOneGone(server: ServerProcess, before: number[], timeoutMs: number): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const live = new Set(server.workerPids());
    const gone = before.find((pid) => !live.has(pid));
    if (gone !== undefined) return gone;
    await sleep(SCRAPE_INTERVAL_MS);
  }
  return undefined;
}

// Resolves with how many /light it sent that were answered, all of which a primary counts.
async function waitForPool(server: ServerProcess, workers: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let answeredProbes = 0;
  while (performance.now() < deadline) {
    const live = server.workerPids();
    if (live.length === workers) {
      const answered = new Set<number>();
      for (let i = 0; i < 4 * workers && answered.size < workers; i++) {
        const pid = await get(server.url('/light')).then(pidOf, () => undefined);
        if (pid === undefined) continue;
        answered.add(pid);
        answeredProbes += 1;
      }
      if (answered.size === workers) return answeredProbes;
    }
    await sleep(SCRAPE_INTERVAL_MS);
  }
  assert.fail(`${server.workerPids().length} workers ${timeoutMs / 1000} s on, expected WORKERS=${workers}`);
}

// A port P for the primary's --inspect whose next `count` ports are free; the check then
// listens on those, as another program might.
async function findPortBeforeFree(count: number, held: net.Server[]): Promise<number> {
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = await findFreePort(CONTROL_HOST);
    const listeners: net.Server[] = [];
    for (let n = 1; n <= count; n++) {
      const listener = await new Promise<net.Server | undefined>((resolve) => {
        const candidate = net.createServer();
        candidate.once('error', () => resolve(undefined));
        candidate.listen(port + n, CONTROL_HOST, () => resolve(candidate));
      });
      if (!listener) break;
      listeners.push(listener);
    }
    if (listeners.length === count) {
      held.push(...listeners);
      return port;
    }
    for (const listener of listeners) listener.close();
  }
  throw new Error(`found no free port with ${count} free ports after it in ${PORT_ATTEMPTS} tries`);
}
