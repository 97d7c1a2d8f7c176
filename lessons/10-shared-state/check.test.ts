// Lesson 10 checks. They run a real Redis (redis-server, on a free port of 127.0.0.1, with
// its own temporary folder, nothing saved; scripts/lib/redis-server.ts) and verify that,
// with WORKERS=2, RATE_LIMIT=10 and RATE_WINDOW_MS=1500:
// - before: the starter, which keeps its state in each worker's memory, lets through
//   about WORKERS × RATE_LIMIT of a burst and knows a session on one worker only (printed,
//   as the lesson's "before")
// - of bursts of 30 requests at once from each of 3 clients, over new connections (both
//   workers answer), exactly RATE_LIMIT per client are answered 200, the rest 429 with a
//   Retry-After of whole seconds; Redis accepts no new connection meanwhile (one client
//   per worker, made once)
// - a client that keeps trying every 100 ms is let in again once its window ends, and
//   no later than its Retry-After said
// - a session from POST /login is known to every worker (GET /me), and survives a
//   worker's /crash and a rolling reload (SIGHUP), which ends in time
// - while Redis hangs (SIGSTOP) and while it is down (killed), no worker exits, and every
//   request is answered within 2 × REDIS_TIMEOUT_MS + 750 ms: the limit fails open (200),
//   the session routes fail closed (503 with Retry-After, never a 401); once Redis is back
//   (SIGCONT, or started again), sessions and the limit work again within 3 s; while it is
//   down, a call fails at once (within REDIS_TIMEOUT_MS); after the hang, every key Redis
//   holds has an expiry; a server started before its Redis serves at once, and uses Redis
//   once it starts
// - a session's key expires; session ids are distinct, long and random; a 429's body says
//   the time left in ms
// - two hosts (namespaces, or ports of 127.0.0.1) behind nginx, sharing one Redis, hold
//   one limit between them, exactly, and know each other's sessions
//
// Every wait is bounded. A failure names the task of the lesson's README (and the
// starter's numbered TODO) that it points to.
import { setTimeout as sleep } from 'node:timers/promises';
import { assert } from 'chai';
import { collectPids, targetFile } from '../../scripts/lib/checks.ts';
import { watchHeal } from '../../scripts/lib/crashes.ts';
import { VerdictError } from '../../scripts/lib/errors.ts';
import { startHostPool, type HostPool } from '../../scripts/lib/host-pool.ts';
import { pidOf, send, type HttpAnswer } from '../../scripts/lib/http.ts';
import { starterFile, resolveLesson } from '../../scripts/lib/lessons.ts';
import { findNginx, INSTALL_NGINX, startNginx, type Nginx } from '../../scripts/lib/nginx.ts';
import { findFreePort } from '../../scripts/lib/ports.ts';
import { startRedis, findRedis, INSTALL_REDIS, type RedisServer } from '../../scripts/lib/redis-server.ts';
import { reloadAndWatch } from '../../scripts/lib/reloads.ts';
import { formatMs, note, target } from '../../scripts/lib/report.ts';
import { startServer, type ServerProcess } from '../../scripts/lib/server-process.ts';

const WORKERS = 2;
const RATE_LIMIT = 10;
const RATE_WINDOW_MS = 1_500;
const REDIS_TIMEOUT_MS = 250;
// A request waits on Redis at most twice (its limit, then its session), each bounded.
const ANSWER_BOUND_MS = 2 * REDIS_TIMEOUT_MS + 750;
const ASK_TIMEOUT_MS = 5_000;
const BURST_CLIENTS = 3;
const BURST_REQUESTS = 30;
const BEFORE_REQUESTS = 40;
const SESSION_REQUESTS = 20;
const STEADY_INTERVAL_MS = 100;
const STEADY_MS = 2.2 * RATE_WINDOW_MS;
// A 429 in a burst comes early in its window: less than this left means the time was not
// read in ms.
const MIN_LEFT_MS = 100;
// How late a client may be let in after the time its Retry-After named.
const RETRY_SLACK_MS = 300;
const HEAL_TIMEOUT_MS = 5_000;
const MIN_SESSION_ID_CHARS = 16;
const POOL_WAIT_MS = 5_000;
// A reload replaces 2 workers one at a time; a worker kept alive by an open socket
// instead waits out DRAIN_TIMEOUT_MS.
const DRAIN_TIMEOUT_MS = 8_000;
const RELOAD_TIMEOUT_MS = 6_000;
const OUTAGE_REQUESTS = 4;
// With no connection to Redis, a call fails at once, not after REDIS_TIMEOUT_MS.
const DOWN_BOUND_MS = REDIS_TIMEOUT_MS;
const BOOT_LISTEN_MS = 5_000;
const RECOVER_MS = 3_000;
const RECOVER_POLL_MS = 100;
const HOSTS = 2;
const HOST_BURST = 24;
// Long enough for a burst through nginx to fit in one window, however slow the hosts.
const HOST_WINDOW_MS = 10 * RATE_WINDOW_MS;

let unique = 0;
// A client name of its own for each use: no check shares a window with another.
const newClient = (name: string) => `${name}-${process.pid}-${++unique}`;

interface Answer {
  status: number;
  json?: unknown;
  pid?: number;
  ms: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  // Why there was no answer, when there was none.
  error?: string;
}

async function ask(url: string, method: string, client: string, cookie?: string, timeoutMs = ASK_TIMEOUT_MS): Promise<Answer> {
  const started = performance.now();
  const headers = { 'x-client-id': client, ...(cookie ? { cookie } : {}) };
  return send(method, url, timeoutMs, false, headers).then(
    (answer: HttpAnswer) => ({ status: answer.status, json: answer.json, pid: pidOf(answer), ms: answer.ms, headers: answer.headers, body: answer.body }),
    (error: Error) => ({ status: 0, ms: performance.now() - started, headers: {}, body: '', error: error.message }),
  );
}

function errorOf(answer: Answer): string {
  if (answer.error) return answer.error;
  try {
    return String((JSON.parse(answer.body) as { error?: unknown }).error ?? answer.body);
  } catch {
    return answer.body;
  }
}

function countBy<T>(items: T[], key: (item: T) => string | number): Map<string | number, number> {
  const counts = new Map<string | number, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

function describeStatuses(answers: Answer[]): string {
  return [...countBy(answers, (answer) => answer.status || 'no answer')].map(([status, count]) => `${count} × ${status}`).join(', ');
}

// The verdict for answers that are neither 200 nor 429: the store's own error names the task.
function assertNoFailures(answers: Answer[], what: string): void {
  const failed = answers.filter((answer) => answer.status !== 200 && answer.status !== 429);
  if (failed.length === 0) return;
  const error = errorOf(failed[0]);
  const hint = /closed|offline|ECONNREFUSED/i.test(error) ? ': make the client and connect() it (task 1)' : '';
  throw new VerdictError(`${failed.length} of ${answers.length} ${what} failed (${describeStatuses(answers)}), such as: ${error}${hint}`);
}

function sessionCookie(answer: Answer): string | undefined {
  const header = answer.headers['set-cookie'];
  const first = Array.isArray(header) ? header[0] : header;
  return first?.split(';')[0];
}

async function burst(url: string, client: string, count: number): Promise<Answer[]> {
  return Promise.all(Array.from({ length: count }, () => ask(url, 'GET', client)));
}

// Judges one client's burst: exactly RATE_LIMIT let through, the rest refused well.
function judgeBurst(answers: Answer[], client: string, where: string, windowMs = RATE_WINDOW_MS): void {
  const allowed = answers.filter((answer) => answer.status === 200);
  const perPid = countBy(allowed, (answer) => answer.pid ?? 0);
  const spread = [...perPid].map(([pid, count]) => `${count} by pid ${pid}`).join(', ');
  if (allowed.length > RATE_LIMIT) {
    const race = `requests that arrived together read the same count before any of them wrote it back: a GET then a SET races; count with INCR in one MULTI, which Redis runs as one (task 2)`;
    // Counts kept in each process's memory let at most RATE_LIMIT through per process.
    const perProcess = perPid.size > 1 && [...perPid.values()].every((count) => count <= RATE_LIMIT);
    const why = perProcess ? `each process let up to RATE_LIMIT through on its own, as a count kept in each one's memory does: keep it in Redis (task 2). If it is in Redis, ${race}` : race;
    throw new VerdictError(`${allowed.length} of ${answers.length} requests of client ${client} sent at once ${where} were let through (${spread}), RATE_LIMIT=${RATE_LIMIT}: ${why}`);
  }
  if (allowed.length < RATE_LIMIT) {
    throw new VerdictError(`only ${allowed.length} of ${answers.length} requests of client ${client} ${where} were let through, RATE_LIMIT=${RATE_LIMIT} (${describeStatuses(answers)}): a client gets RATE_LIMIT requests per window, counted from 1 (task 2)`);
  }
  const refused = answers.filter((answer) => answer.status === 429);
  const maxSeconds = Math.ceil(windowMs / 1000);
  for (const answer of refused) {
    const retryAfter = String(answer.headers['retry-after'] ?? '');
    const inSeconds = Number(retryAfter) === windowMs ? `: that is RATE_WINDOW_MS as seconds, as when the window is set with EXPIRE, which takes seconds (PEXPIRE takes ms)` : '';
    assert(/^\d+$/.test(retryAfter) && Number(retryAfter) >= 1 && Number(retryAfter) <= maxSeconds, `a 429 carried Retry-After "${retryAfter}": whole seconds from 1 to ${maxSeconds} (RATE_WINDOW_MS=${windowMs}), the time left in the window, rounded up${inSeconds} (task 2)`);
    const leftMs = (answer.json as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    assert(
      typeof leftMs === 'number' && leftMs > MIN_LEFT_MS && leftMs <= windowMs,
      `a 429 said retryAfterMs ${leftMs}, RATE_WINDOW_MS=${windowMs}: hit() answers the time left in the window in ms, which PTTL gives (TTL gives seconds) (task 2)`,
    );
  }
}

describe('lesson 10: state that every worker shares', function () {
  let redis: RedisServer;

  before(async function () {
    if (!findRedis()) throw new VerdictError(INSTALL_REDIS);
    redis = await startRedis(await findFreePort());
  });

  after(async function () {
    await redis?.stop();
  });

  it("before: in each worker's memory, the limit is per worker and a session is one worker's", async function () {
    const server = await startCluster(starterFile(resolveLesson('10')), '');
    try {
      const answers = await burst(server.url('/light'), newClient('before'), BEFORE_REQUESTS);
      const allowed = answers.filter((answer) => answer.status === 200);
      const pids = countBy(allowed, (answer) => answer.pid ?? 0);
      note(`the starter, no REDIS_URL, ${WORKERS} workers, RATE_LIMIT=${RATE_LIMIT}: ${allowed.length} of ${BEFORE_REQUESTS} sent at once let through (${[...pids].map(([pid, count]) => `${count} by pid ${pid}`).join(', ')})`);
      const client = newClient('before-login');
      const login = await ask(server.url('/login'), 'POST', client);
      const me = await Promise.all(Array.from({ length: SESSION_REQUESTS }, () => ask(server.url('/me'), 'GET', newClient('before-me'), sessionCookie(login))));
      const unknown = me.filter((answer) => answer.status === 401);
      note(`a session made on pid ${login.pid}: GET /me answered 401 "not logged in" ${unknown.length} times of ${SESSION_REQUESTS}, by pids ${[...new Set(unknown.map((answer) => answer.pid))].join(', ')}`);
      assert(allowed.length > RATE_LIMIT && unknown.length > 0, `the starter did not show the per-worker bug (${describeStatuses(answers)}; ${describeStatuses(me)}): a course bug, please report it`);
    } finally {
      await server.stop();
    }
  });

  describe(`in Redis, WORKERS=${WORKERS}`, function () {
    let server: ServerProcess;

    before(async function () {
      server = await startCluster(targetFile(), redis.url());
    });

    after(async function () {
      await server?.stop();
    });

    it(`lets exactly RATE_LIMIT=${RATE_LIMIT} of a burst through per client, whichever worker answers`, async function () {
      const connectionsBefore = await redis.info('total_connections_received');
      const clients = Array.from({ length: BURST_CLIENTS }, () => newClient('burst'));
      // Interleaved, so that the workers, dealt connections in turn, share each client's.
      const rounds = await Promise.all(Array.from({ length: BURST_REQUESTS }, () => Promise.all(clients.map((client) => ask(server.url('/light'), 'GET', client)))));
      const answers = clients.map((_, i) => rounds.map((round) => round[i]));
      const connections = (await redis.info('total_connections_received')) - connectionsBefore - 1;
      answers.forEach((each) => assertNoFailures(each, `GET /light sent at once`));
      const pids = new Set(answers.flat().map((answer) => answer.pid));
      const allowedPerClient = answers.map((each) => each.filter((answer) => answer.status === 200).length);
      // Under one count for all, the clients (and the check's probes before them) share RATE_LIMIT.
      if (allowedPerClient.every((count) => count < RATE_LIMIT) && allowedPerClient.reduce((sum, count) => sum + count, 0) <= RATE_LIMIT) {
        throw new VerdictError(`the ${BURST_CLIENTS} clients were let through ${allowedPerClient.join(', ')} times: at most ${RATE_LIMIT} between them, so they share one count; key it per client (rate:<client>) (task 2)`);
      }
      for (const [i, each] of answers.entries()) {
        note(`client ${i + 1}: ${describeStatuses(each)}, answered by ${new Set(each.map((answer) => answer.pid)).size} workers`);
        judgeBurst(each, clients[i], 'over new connections');
      }
      note(`pids that answered: ${[...pids].join(', ')}`);
      target(
        `new connections Redis accepted during ${BURST_CLIENTS * BURST_REQUESTS} requests: ${connections} (at most ${WORKERS}, one per worker)`,
        connections <= WORKERS,
        `Redis accepted ${connections} connections during ${BURST_CLIENTS * BURST_REQUESTS} requests: a client made per request costs a connection (and a handshake) each time, and leaves them open; make one client per worker, once (task 1)`,
      );
    });

    it('lets a client that keeps trying in again once its window ends, as its Retry-After said', async function () {
      const client = newClient('steady');
      const answers: { at: number; answer: Answer }[] = [];
      const started = performance.now();
      while (performance.now() - started < STEADY_MS) {
        const at = performance.now() - started;
        answers.push({ at, answer: await ask(server.url('/light'), 'GET', client) });
        await sleep(Math.max(0, STEADY_INTERVAL_MS - (performance.now() - started - at)));
      }
      assertNoFailures(
        answers.map((each) => each.answer),
        'GET /light',
      );
      const statuses = answers.map((each) => (each.answer.status === 200 ? '.' : 'x')).join('');
      note(`one request every ${STEADY_INTERVAL_MS} ms for ${formatMs(STEADY_MS)}, window ${formatMs(RATE_WINDOW_MS)}: ${statuses} (. let through, x 429)`);
      const firstRefused = answers.findIndex((each) => each.answer.status === 429);
      assert(firstRefused >= 0, `all ${answers.length} requests over ${formatMs(STEADY_MS)} were let through, RATE_LIMIT=${RATE_LIMIT} per ${RATE_WINDOW_MS} ms (task 2)`);
      const retryAt = answers[firstRefused].at + Number(answers[firstRefused].answer.headers['retry-after']) * 1000;
      const readmitted = answers.slice(firstRefused).find((each) => each.answer.status === 200);
      assert(
        readmitted !== undefined,
        `the client was refused from its request ${firstRefused + 1} on, and never let in again in ${formatMs(STEADY_MS)}, though its window is ${formatMs(RATE_WINDOW_MS)}: a PEXPIRE on every request pushes the window's end back each time, so a client that keeps trying is locked out for good; set the expiry once, with NX (task 2)`,
      );
      target(
        `let in again ${formatMs(readmitted.at - answers[firstRefused].at)} after its first 429, which said Retry-After ${answers[firstRefused].answer.headers['retry-after']} s (${formatMs(Number((answers[firstRefused].answer.json as { retryAfterMs?: number }).retryAfterMs))} left, rounded up)`,
        readmitted.at <= retryAt + RETRY_SLACK_MS,
        `the client was let in ${formatMs(readmitted.at - answers[firstRefused].at)} after a 429 that said Retry-After: ${answers[firstRefused].answer.headers['retry-after']}: say the time left in the window (PTTL), rounded up to whole seconds (task 2)`,
      );
    });

    it('knows a session on every worker, after a /crash and after a rolling reload', async function () {
      const client = newClient('alice');
      const login = await ask(server.url('/login'), 'POST', client);
      assertNoFailures([login], 'POST /login');
      const cookie = sessionCookie(login);
      assert(cookie?.startsWith('sid='), `POST /login answered ${login.status} with Set-Cookie ${login.headers['set-cookie']}: set the session cookie sid (given)`);
      const sessions = await redis.expiries();
      const key = `session:${cookie!.slice('sid='.length)}`;
      assert(sessions.has(key), `POST /login set ${cookie}, and Redis has no key ${key}: save the session there (task 3)`);
      const ttl = sessions.get(key)!;
      assert(ttl > 0, `the session's key ${key} never expires (PTTL ${ttl}): every login would stay in Redis for good; SET it with PX config.sessionTtlMs (task 3)`);
      const pair = await Promise.all(['bob', 'carol'].map((name) => ask(server.url('/login'), 'POST', newClient(name))));
      const ids = [cookie, ...pair.map(sessionCookie)].map((each) => each?.slice('sid='.length) ?? '');
      assert(
        new Set(ids).size === ids.length && ids.every((id) => id.length >= MIN_SESSION_ID_CHARS && !/^\d+$/.test(id) && !id.includes(client)),
        `three logins got session ids ${ids.join(', ')}: a session id is a secret, random and long (randomBytes), never a counter, a time or the client's name, which another client could guess or be given too (given: login())`,
      );
      const none = await ask(server.url('/me'), 'GET', client);
      const forged = await ask(server.url('/me'), 'GET', client, 'sid=forged');
      assert(none.status === 401 && forged.status === 401, `GET /me with no cookie answered ${none.status}, and with sid=forged ${forged.status}: both must be 401 (task 3)`);

      const seen = async (when: string) => {
        // Each from a client name of its own, so the limit leaves them alone.
        const answers = await Promise.all(Array.from({ length: SESSION_REQUESTS }, () => ask(server.url('/me'), 'GET', newClient('me'), cookie)));
        assertNoFailures(answers, `GET /me ${when}`);
        const unknown = answers.filter((answer) => answer.status !== 200 || !answer.body.includes(`"${client}"`));
        note(`GET /me ${when}: ${describeStatuses(answers)}, by pids ${[...new Set(answers.map((answer) => answer.pid))].join(', ')}`);
        assert(
          unknown.length === 0,
          `${unknown.length} of ${answers.length} GET /me ${when} did not know the session made by pid ${login.pid} (${describeStatuses(unknown)}, by pids ${[...new Set(unknown.map((answer) => answer.pid))].join(', ')}): keep sessions in Redis, where every worker reads them (task 3)`,
        );
        return new Set(answers.map((answer) => answer.pid));
      };

      const pidsAtFirst = await seen('over new connections');
      note(`the session was made by pid ${login.pid}; ${pidsAtFirst.size} workers answered`);

      const original = server.workerPids();
      await ask(server.url('/crash'), 'GET', newClient('crasher'), undefined, 2_000);
      const heal = await watchHeal(server, original, HEAL_TIMEOUT_MS);
      if (!heal.healed) {
        const why =
          heal.workers.length > original.length
            ? `: the worker that crashed was replaced, and has not exited though it drained. Its Redis client's open socket keeps it alive until its drain timeout: close() the client when the server closes (task 4)`
            : '';
        throw new VerdictError(`after a /crash the cluster did not heal within ${formatMs(HEAL_TIMEOUT_MS)} (workers ${heal.workers.join(', ')})${why}`);
      }
      const afterCrash = await seen(`after pid ${heal.crashed}'s /crash`);
      const replacement = heal.workers.find((pid) => !original.includes(pid));
      note(`the replacement, pid ${replacement}, ${afterCrash.has(replacement) ? 'knew it too' : 'did not answer'}`);

      const reload = await reloadAndWatch(server, RELOAD_TIMEOUT_MS);
      const lingering = reload.before.filter((pid) => reload.after.includes(pid));
      assert(
        reload.done,
        `a rolling reload (SIGHUP) did not end within ${formatMs(RELOAD_TIMEOUT_MS)}: pids ${lingering.join(', ')} were still running. A worker that has drained still has its Redis client's socket open, and stays alive until its drain timeout: close() the client when the server closes (task 4)`,
      );
      note(`a rolling reload replaced ${reload.before.join(', ')} with ${reload.after.join(', ')} in ${formatMs(reload.ms)}`);
      await seen('after the reload');
    });

    it(`answers within ${ANSWER_BOUND_MS} ms while Redis hangs, and works again once it answers`, async function () {
      const cookie = await logIn(server);
      await outage(server, cookie, 'hangs', () => redis.pause(), ANSWER_BOUND_MS);
      redis.resume();
      await recovery(server, cookie, 'answered again');
      // The calls that timed out ran once Redis woke: each must have left its key an expiry.
      const forever = [...(await redis.expiries())].filter(([, ttl]) => ttl < 0).map(([key]) => key);
      note(`keys without an expiry: ${forever.length}`);
      if (forever.some((key) => key.startsWith('rate:'))) {
        throw new VerdictError(`after the hang, Redis holds ${forever.filter((key) => key.startsWith('rate:')).join(', ')} with no expiry: a count whose expiry is set by a call of its own loses it when that call fails, as while Redis hung, and its client is refused for good; send the PEXPIRE in the same MULTI as the INCR (task 2)`);
      }
      assert(forever.length === 0, `Redis holds keys with no expiry: ${forever.join(', ')} (tasks 2 and 3)`);
    });

    it(`answers at once (within ${DOWN_BOUND_MS} ms) while Redis is down, and works again once it is back`, async function () {
      const cookie = await logIn(server);
      await outage(server, cookie, 'is down', () => redis.kill(), DOWN_BOUND_MS);
      await redis.start();
      note('Redis started again, with no data: every session is gone, so the check logs in again');
      await recovery(server, await logInOnceBack(server), 'was back');
    });

    it('serves from its start while Redis is not there yet, and uses it once it is', async function () {
      const port = await findFreePort();
      let early: ServerProcess | undefined;
      let late: RedisServer | undefined;
      try {
        early = await startCluster(targetFile(), `redis://127.0.0.1:${port}`, BOOT_LISTEN_MS).catch((error: Error) => {
          throw new VerdictError(
            `with no Redis on its port yet, the server did not serve within ${formatMs(BOOT_LISTEN_MS)} (${error.message.split('\n')[0]}): a worker that awaits connect() before it listens serves nothing until Redis is there; call connect() without awaiting it (task 1)`,
          );
        });
        const cookie = 'sid=none-yet';
        await outage(early, cookie, 'was not there yet', () => undefined, DOWN_BOUND_MS);
        late = await startRedis(port);
        await recovery(early, await logInOnceBack(early), 'started');
      } finally {
        await early?.stop();
        await late?.stop();
      }
    });
  });

  describe(`${HOSTS} hosts behind nginx, sharing one Redis`, function () {
    let pool: HostPool;
    let nginx: Nginx;
    let shared: RedisServer;

    before(async function () {
      if (!findNginx()) throw new VerdictError(INSTALL_NGINX);
      pool = await startHostPool(HOSTS, 5_000, {
        file: targetFile(),
        env: (host) => ({ WORKERS: '1', REDIS_URL: shared.url(host.testHost?.gateway ?? '127.0.0.1'), RATE_LIMIT: String(RATE_LIMIT), RATE_WINDOW_MS: String(HOST_WINDOW_MS), REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS) }),
        before: async (hosts) => {
          shared = await startRedis(await findFreePort(), ['127.0.0.1', ...hosts.flatMap((host) => host.testHost?.gateway ?? [])]);
        },
      });
      if (pool.loopbackBecause) note(`the hosts are ports of 127.0.0.1 (${pool.loopbackBecause})`);
      const port = await findFreePort();
      const upstream = pool.hosts.map((host) => `server ${host.address}:${host.port};`).join(' ');
      nginx = await startNginx(`upstream hosts { ${upstream} }\nserver { listen 127.0.0.1:${port}; location / { proxy_pass http://hosts; } }`, port);
    });

    after(async function () {
      await nginx?.stop();
      await pool?.stop();
      await shared?.stop();
    });

    it('holds one limit across the hosts, exactly, and knows a session made on either', async function () {
      const url = (route: string) => `http://127.0.0.1:${nginx.port}${route}`;
      const client = newClient('hosts');
      const answers = await burst(url('/light'), client, HOST_BURST);
      assertNoFailures(answers, 'GET /light through nginx');
      const hosts = new Set(nginx.accessLog().flatMap((passage) => passage.upstreams));
      note(`${describeStatuses(answers)} through nginx, passed to ${[...hosts].join(', ')}`);
      judgeBurst(answers, client, `through nginx to ${hosts.size} hosts`, HOST_WINDOW_MS);

      const user = newClient('hosts-user');
      const login = await ask(url('/login'), 'POST', user);
      assertNoFailures([login], 'POST /login through nginx');
      for (const host of pool.hosts) {
        const me = await ask(`http://${host.address}:${host.port}/me`, 'GET', user, sessionCookie(login));
        assert(me.status === 200, `GET /me on ${host.name} answered ${me.status} (${errorOf(me)}) for a session made through nginx: every host must read sessions from the one Redis (task 3)`);
      }
      note(`a session made through nginx is known on ${pool.hosts.map((host) => host.name).join(' and ')}`);
    });
  });

  // Once every worker answers: the primary listens as soon as its first worker does.
  async function startCluster(file: string, redisUrl: string, listenTimeoutMs?: number): Promise<ServerProcess> {
    const server = await startServer({
      listenTimeoutMs,
      file,
      env: {
        WORKERS: String(WORKERS),
        REDIS_URL: redisUrl,
        RATE_LIMIT: String(RATE_LIMIT),
        RATE_WINDOW_MS: String(RATE_WINDOW_MS),
        REDIS_TIMEOUT_MS: String(REDIS_TIMEOUT_MS),
        DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
      },
    });
    await collectPids(server, WORKERS, POOL_WAIT_MS, 0);
    return server;
  }

  async function logIn(server: ServerProcess): Promise<string> {
    const login = await ask(server.url('/login'), 'POST', newClient('outage'));
    assertNoFailures([login], 'POST /login');
    return sessionCookie(login)!;
  }

  async function logInOnceBack(server: ServerProcess): Promise<string> {
    const deadline = performance.now() + RECOVER_MS;
    let login: Answer;
    do {
      login = await ask(server.url('/login'), 'POST', newClient('back'));
      if (login.status === 200) return sessionCookie(login)!;
      await sleep(RECOVER_POLL_MS);
    } while (performance.now() < deadline);
    throw new VerdictError(`POST /login still answered ${login.status} (${errorOf(login)}) ${formatMs(RECOVER_MS)} after Redis was back: let the client reconnect (socket.reconnectStrategy) (task 1)`);
  }

  // Requests while Redis `state`s: answered in time, the limit open, the sessions closed.
  async function outage(server: ServerProcess, cookie: string, state: string, begin: () => unknown, boundMs: number): Promise<void> {
    const pids = server.workerPids();
    await begin();
    const client = newClient('outage');
    const limited = await Promise.all(Array.from({ length: OUTAGE_REQUESTS }, () => ask(server.url('/light'), 'GET', client, undefined, ANSWER_BOUND_MS + 2_000)));
    const me = await Promise.all(Array.from({ length: OUTAGE_REQUESTS }, () => ask(server.url('/me'), 'GET', client, cookie, ANSWER_BOUND_MS + 2_000)));
    const login = await ask(server.url('/login'), 'POST', client, undefined, ANSWER_BOUND_MS + 2_000);
    await sleep(200);
    const all = [...limited, ...me, login];
    const slowest = Math.max(...all.map((answer) => answer.ms));
    note(`while Redis ${state}: GET /light ${describeStatuses(limited)}; GET /me ${describeStatuses(me)}; POST /login ${describeStatuses([login])}; the slowest in ${formatMs(slowest)}`);
    const exited = pids.filter((pid) => !server.workerPids().includes(pid));
    assert(
      exited.length === 0 && !server.exitInfo,
      `worker${exited.length > 1 ? 's' : ''} ${exited.join(', ')} exited while Redis ${state}: a Redis client emits 'error' when its connection fails, and an 'error' with no listener is thrown; listen for it (task 1).${server.stderr ? ` Its stderr ends: ${server.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
    );
    const late = all.filter((answer) => answer.status === 0 || answer.ms > boundMs);
    if (late.length > 0 && boundMs < ANSWER_BOUND_MS && late.every((answer) => answer.status !== 0 && answer.ms <= ANSWER_BOUND_MS)) {
      throw new VerdictError(`while Redis ${state}, requests waited up to ${formatMs(slowest)}: calls were queued for a connection that is not there, until their timeout; disableOfflineQueue: true fails them at once (task 1)`);
    }
    target(
      `every request answered within ${formatMs(boundMs)}: the slowest in ${formatMs(slowest)}`,
      late.length === 0,
      `${late.length} of ${all.length} requests waited longer than ${formatMs(boundMs)} while Redis ${state} (${describeStatuses(late)}; the slowest ${formatMs(slowest)}): bound every call with commandOptions { timeout: config.redisTimeoutMs, rejectInFlight: true } (without rejectInFlight, timeout ends only the wait to be sent), and disableOfflineQueue (task 1)`,
    );
    const closedLimit = limited.filter((answer) => answer.status !== 200);
    if (closedLimit.length > 0) {
      throw new VerdictError(`GET /light answered ${describeStatuses(limited)} while Redis ${state}, such as: ${errorOf(closedLimit[0])}: the limit fails open, so an outage of Redis is not one of the site: let the request through (task 5)`);
    }
    const wrongSession = [...me, login].filter((answer) => answer.status !== 503 || !/^\d+$/.test(String(answer.headers['retry-after'] ?? '')));
    if (me.some((answer) => answer.status === 200)) {
      throw new VerdictError(`GET /me answered 200 while Redis ${state} (${describeStatuses(me)}): the session came from somewhere other than Redis, a copy in the worker's memory, which another worker does not have and which outlives a logout; read sessions from Redis alone (task 3)`);
    }
    if (wrongSession.length > 0 && wrongSession.every((answer) => answer.status === 503)) {
      throw new VerdictError(`the session routes answered 503 while Redis ${state}, ${wrongSession.length} of them with no Retry-After: say when to try again, res.setHeader('retry-after', 1) (task 5)`);
    }
    if (wrongSession.some((answer) => answer.status === 401)) {
      throw new VerdictError(`GET /me answered 401 while Redis ${state}: that tells the client its session is gone, and it is not; answer 503 with a Retry-After (task 5)`);
    }
    if (wrongSession.length > 0) {
      throw new VerdictError(`the session routes answered ${describeStatuses([...me, login])} while Redis ${state}, such as: ${errorOf(wrongSession[0])}: answer 503 with a Retry-After, since who the client is cannot be known (task 5)`);
    }
  }

  // Once every worker knows the session again (each reconnects on its own), a burst.
  async function recovery(server: ServerProcess, cookie: string, state: string): Promise<void> {
    const started = performance.now();
    const recovered = new Set<number>();
    let me: Answer;
    do {
      me = await ask(server.url('/me'), 'GET', newClient('recovery'), cookie);
      if (me.status === 200 && me.pid !== undefined) recovered.add(me.pid);
      if (server.workerPids().every((pid) => recovered.has(pid))) break;
      if (me.status !== 200) await sleep(RECOVER_POLL_MS);
    } while (performance.now() - started < RECOVER_MS);
    const behind = server.workerPids().filter((pid) => !recovered.has(pid));
    assert(behind.length === 0, `GET /me still answered ${me.status} (${errorOf(me)}) on pid${behind.length > 1 ? 's' : ''} ${behind.join(', ')} ${formatMs(RECOVER_MS)} after Redis ${state}: let the client reconnect (task 1)`);
    const client = newClient('recovered');
    const answers = await burst(server.url('/light'), client, BURST_REQUESTS);
    assertNoFailures(answers, `GET /light once Redis ${state}`);
    note(`once Redis ${state}: every worker read the session again within ${formatMs(performance.now() - started)}; a burst of ${BURST_REQUESTS}: ${describeStatuses(answers)}`);
    judgeBurst(answers, client, `once Redis ${state}`);
  }
});
