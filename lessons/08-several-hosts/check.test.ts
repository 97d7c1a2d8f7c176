// Lesson 8 checks. Three hosts, each running lesson 5's cluster (WORKERS=1), sit behind an
// nginx that runs your nginxConfig(). On Linux as root each host is a network namespace
// with an address of its own (10.X.N.2); elsewhere each is a port of 127.0.0.1. They verify:
// - nginx accepts the config, and requests through it spread over every host
// - upstream connections are reused: far fewer new connections on the hosts than requests,
//   though the clients close theirs
// - a host busy with a queue of /heavy is waited for, not taken for a frozen one
// - the hosts' keepAliveTimeout outlasts nginx's upstream keepalive_timeout
// - a host killed under a steady GET load costs no GET: nginx passes them to another host
// - a host frozen (SIGSTOP) costs no GET either, and no GET waits much longer than your
//   proxy_read_timeout
// - a POST that reached a frozen host is not sent again to another
// - a host that drops off the network (its replies swallowed in its namespace, so SYNs go
//   unanswered) costs no GET, and no GET waits much longer than your timeouts: nginx's
//   default proxy_connect_timeout of 60 s would hold each new connection to it
// - rollingDeploy() reloads every host, one at a time, under load: no request fails and
//   every worker is replaced; when a new release crashes (late, as a failing readiness
//   would), it stops at the first host and rejects
// - nothing is left afterwards: no host, namespace, nginx or worker
// nginx's own access log tells which hosts each request was passed to.
// A failure names the task of the lesson's README (and the starter's TODO) it points to.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { assert } from 'chai';
import { targetFile } from '../../scripts/lib/checks.ts';
import { VerdictError } from '../../scripts/lib/errors.ts';
import { countConnections, describeHosts, startHost, startHostPool, type Host, type HostPool } from '../../scripts/lib/host-pool.ts';
import { pidOf, send } from '../../scripts/lib/http.ts';
import { runLoad, type LoadSummary } from '../../scripts/lib/load.ts';
import { findNginx, INSTALL_NGINX, startNginx, type Nginx, type Passage } from '../../scripts/lib/nginx.ts';
import { relativeToRepo } from '../../scripts/lib/paths.ts';
import { findFreePort } from '../../scripts/lib/ports.ts';
import { formatMs, note, target } from '../../scripts/lib/report.ts';
import { isGroupAlive } from '../../scripts/lib/server-process.ts';
import { assertTestHost, dropOffNetwork, listOurs } from '../../scripts/lib/test-hosts.ts';

type Balancer = typeof import('./balancer.ts');

const HOSTS = 3;
const SPREAD_REQUESTS = 30;
const REUSE_REQUESTS = 200;
const REUSE_CONCURRENCY = 4;
// A burst of /heavy, 10 waiting on each host's one worker: the last answer of each comes
// after 10 × one /heavy (about 150 ms), which a read timeout must allow for.
const BUSY_REQUESTS = 60;
const BUSY_CONCURRENCY = 30;
// Kept connections: a few per host and client. Without keep-alive, one per request.
const MAX_NEW_CONNECTIONS_SHARE = 0.2;
// nginx's defaults, which apply when the config does not set them.
const NGINX_DEFAULT_KEEPALIVE_TIMEOUT_MS = 60_000;
const NGINX_DEFAULT_READ_TIMEOUT_MS = 60_000;
const NGINX_DEFAULT_CONNECT_TIMEOUT_MS = 60_000;
// The host that drops off the network: under a GET load this long.
const OFF_NETWORK_LOAD_SECONDS = 8;
// The steady GET loads: an open loop, so a stuck request does not slow the others.
const STEADY_LOAD = { rps: 60, concurrency: 20, timeoutMs: 10_000 };
const KILL_LOAD_SECONDS = 4;
const KILL_AFTER_MS = 1_000;
// The freeze's load runs this long past the read timeout, so that what nginx does after
// its first timeout shows (FREEZE_LOAD_SECONDS in all, at least).
// A read timeout longer than the clients' 10 s fails anyway, so 14 s is enough.
const FREEZE_LOAD_SECONDS = 8;
const FREEZE_LOAD_AFTER_TIMEOUT_S = 4;
const MAX_FREEZE_LOAD_SECONDS = 14;
// Beyond the configured read timeout, the retry on the next host and a busy machine.
const FREEZE_SLACK_MS = 2_000;
const POST_TRIES = 4;
// After a frozen host's first timeout, allow for requests nginx had already picked it for.
const HEALTH_SLACK_MS = 1_000;
const MAX_LATE_TO_FROZEN = 2;
const DEPLOY_LOAD_SECONDS = 12;
const DEPLOY_TIMEOUT_MS = 30_000;
const RELOAD_TIMEOUT_MS = 15_000;
// The crashing release's reload is reported failed no sooner than this after it started,
// as a release whose readiness fails late would be: a deploy that stops waiting for a
// host after a fixed time goes on to the next before it knows.
const FAILED_RELOAD_AFTER_MS = 6_000;
// Reloads started this close to the first were started with it (Promise.all, forEach).
const TOGETHER_MS = 500;

describe('lesson 8: several hosts behind nginx', function () {
  let balancer: Balancer;
  let pool: HostPool | undefined;
  let hosts: Host[] = [];
  let nginx: Nginx | undefined;
  let nginxUrl = '';

  before(async function () {
    if (!findNginx()) throw new VerdictError(INSTALL_NGINX);
    balancer = await importBalancer();
    pool = await startHostPool(HOSTS, balancer.HOST_KEEP_ALIVE_TIMEOUT_MS);
    hosts = pool.hosts;
    if (pool.loopbackBecause) note(`hosts are ports of 127.0.0.1 (${pool.loopbackBecause}): a host that drops off the network cannot be shown`);
    note(`hosts: ${describeHosts(pool)}`);
    const port = await findFreePort();
    const config = await callLearner('nginxConfig(listen, hosts)', () => balancer.nginxConfig({ host: '127.0.0.1', port }, hosts.map(({ address, port }) => ({ host: address, port }))));
    if (typeof config !== 'string') throw new VerdictError(`nginxConfig() returned ${typeof config}, expected the config as a string`);
    nginx = await startNginx(config, port).catch((error: Error) => {
      throw new VerdictError(`${error.message}: nginx names the line it stopped at`);
    });
    nginxUrl = `http://127.0.0.1:${port}`;
  });

  after(async function () {
    await pool?.stop();
    await nginx?.stop();
  });

  it('spreads requests through nginx over every host', async function () {
    const answeredBy = new Map<number, number>();
    for (let i = 0; i < SPREAD_REQUESTS; i++) {
      const answer = await send('GET', `${nginxUrl}/light`, STEADY_LOAD.timeoutMs);
      const pid = pidOf(answer);
      if (pid === undefined) throw new VerdictError(`GET /light through nginx answered ${answer.status} ${answer.body.slice(0, 200)}: proxy_pass every request to the upstream of your hosts (task 1)`);
      answeredBy.set(pid, (answeredBy.get(pid) ?? 0) + 1);
    }
    const shares = hosts.map((host) => {
      const workers = host.server.workerPids();
      return { host, count: workers.reduce((sum, pid) => sum + (answeredBy.get(pid) ?? 0), 0) };
    });
    note(`${SPREAD_REQUESTS} GET /light through nginx: ${shares.map(({ host, count }) => `${host.name} ${count}`).join(', ')}`);
    const strangers = [...answeredBy.keys()].filter((pid) => !hosts.some((host) => host.server.workerPids().includes(pid)));
    assert(strangers.length === 0, `pids ${strangers.join(', ')} answered, which are no worker of the hosts`);
    const missed = shares.filter(({ count }) => count === 0).map(({ host }) => host);
    assert(missed.length === 0, `no request reached ${missed.map((host) => `${host.name} (${host.address}:${host.port})`).join(', ')}: ${whyMissed(readConfig(nginx!), missed)} (task 1)`);
  });

  it('reuses its connections to the hosts', async function () {
    const before = countConnections(hosts);
    const logged = nginx!.accessLog().length;
    // Clients that close their connection after each answer, as many do: nginx's own
    // connections to the hosts are a different hop, and should stay open all the same.
    const load = await runLoad({ url: `${nginxUrl}/light`, requests: REUSE_REQUESTS, concurrency: REUSE_CONCURRENCY, keepAlive: false });
    await sleep(200);
    const opened = countConnections(hosts) - before;
    note(`${load.requests} GET /light, ${REUSE_CONCURRENCY} at a time, each client closing its connection after the answer: the hosts accepted ${opened} new connections`);
    // Reuse counts only if every request was answered: a failed one opened nothing.
    if (load.errors > 0) {
      const failed = (await nginx!.accessLogOf(logged + load.requests)).slice(logged).filter((passage) => passage.status !== 200);
      throw new VerdictError(`${load.errors} of ${load.requests} GET /light failed through nginx (${describeStatuses(failed, load.errorCodes)}), so the reuse of connections was not judged: ${whyFailedThrough(readConfig(nginx!), nginx!)}`);
    }
    target(
      `new connections per request: ${(opened / load.requests).toFixed(2)} ≤ ${MAX_NEW_CONNECTIONS_SHARE}`,
      opened <= MAX_NEW_CONNECTIONS_SHARE * load.requests,
      `each request opened a new connection to its host: ${whyNotReused(readConfig(nginx!))} (task 2)`,
    );
  });

  it('waits for a busy host rather than taking it for a frozen one', async function () {
    const readTimeout = readTimeoutOf(readConfig(nginx!));
    const logged = nginx!.accessLog().length;
    const load = await runLoad({ url: `${nginxUrl}/heavy`, requests: BUSY_REQUESTS, concurrency: BUSY_CONCURRENCY, keepAlive: true, timeoutMs: STEADY_LOAD.timeoutMs });
    const heavy = (await nginx!.accessLogOf(logged + load.requests)).slice(logged).filter((passage) => passage.uri === '/heavy');
    const givenUp = heavy.filter((passage) => passage.upstreamStatuses.includes('504') || passage.status === 504);
    const slowest = Math.max(0, ...heavy.map((passage) => passage.seconds * 1000));
    note(`${load.requests} GET /heavy, ${BUSY_CONCURRENCY} at a time (about ${Math.round(BUSY_CONCURRENCY / hosts.length)} waiting on each host): ${load.errors} failed, the slowest took ${formatSeconds(slowest)}; ${givenUp.length} timed out on a host after your proxy_read_timeout of ${formatSeconds(readTimeout)}`);
    assert(
      givenUp.length === 0,
      `${givenUp.length} /heavy timed out on a busy host after ${formatSeconds(readTimeout)} (proxy_read_timeout) and ${givenUp.some((passage) => passage.upstreams.length > 1) ? 'were computed again on another host' : 'failed'}: a host working through its queue is not frozen. Set proxy_read_timeout above your slowest honest answer, a few seconds (task 4)`,
    );
    assert(load.errors === 0, `${load.errors} of ${load.requests} /heavy failed through nginx (${JSON.stringify(load.errorCodes)})`);
  });

  it("keeps the hosts' idle connections open longer than nginx does", function () {
    const upstreamTimeout = readDuration(upstreamBlock(readConfig(nginx!)), 'keepalive_timeout') ?? NGINX_DEFAULT_KEEPALIVE_TIMEOUT_MS;
    const keepAlive = balancer.HOST_KEEP_ALIVE_TIMEOUT_MS;
    note(`nginx closes an idle upstream connection after ${formatSeconds(upstreamTimeout)}; the hosts after ${formatSeconds(keepAlive)}`);
    target(
      `host keepAliveTimeout ${formatSeconds(keepAlive)} > nginx keepalive_timeout ${formatSeconds(upstreamTimeout)}`,
      keepAlive > upstreamTimeout,
      `a host closes idle connections before nginx does, so nginx can send a request on a connection the host is closing, and its client gets a 502: set HOST_KEEP_ALIVE_TIMEOUT_MS above the upstream's keepalive_timeout (task 5)`,
    );
  });

  it('loses no GET when a host dies under load', async function () {
    const victim = hosts[HOSTS - 1];
    const killedPids = victim.server.groupPids();
    const load = steadyLoad(`${nginxUrl}/light`, KILL_LOAD_SECONDS);
    await sleep(KILL_AFTER_MS);
    victim.server.exitExpected = true;
    victim.server.signalAll('SIGKILL');
    const { summary, failures } = await load;
    note(`${victim.name} (pids ${killedPids.join(', ')}) killed with SIGKILL ${formatSeconds(KILL_AFTER_MS)} into a ${KILL_LOAD_SECONDS} s GET load: ${summary.requests} requests, ${summary.errors} failed`);
    victim.server = await startHost(victim);
    assert(
      summary.errors === 0,
      `${summary.errors} GET failed when ${victim.name} died (${describeFailures(failures)}): pass a request that failed on one host to the next, with proxy_next_upstream error (task 3)`,
    );
  });

  it('answers GETs within its read timeout when a host freezes', async function () {
    const readTimeout = readTimeoutOf(readConfig(nginx!));
    const frozen = hosts[1];
    const seconds = Math.min(MAX_FREEZE_LOAD_SECONDS, Math.max(FREEZE_LOAD_SECONDS, Math.ceil(readTimeout / 1000) + FREEZE_LOAD_AFTER_TIMEOUT_S));
    const logged = nginx!.accessLog().length;
    frozen.server.signalAll('SIGSTOP');
    try {
      const { summary, failures, worstMs } = await steadyLoad(`${nginxUrl}/light`, seconds);
      const duringLoad = (await nginx!.accessLogOf(logged + summary.requests)).slice(logged);
      const passedOn = duringLoad.filter((passage) => passage.upstreams.length > 1).length;
      note(`${frozen.name} frozen (SIGSTOP) under a ${seconds} s GET load: ${summary.requests} requests, ${summary.errors} failed, ${passedOn} passed on to another host; the slowest took ${formatSeconds(worstMs)}`);
      const timeoutLine = `your proxy_read_timeout is ${formatSeconds(readTimeout)}${readTimeout === NGINX_DEFAULT_READ_TIMEOUT_MS ? " (nginx's default)" : ''}`;
      const why =
        (passedOn === 0 ? whyNotPassedOn(readConfig(nginx!), readTimeout) : undefined) ??
        `${timeoutLine}. A host that takes connections but never answers holds each request that long; set proxy_read_timeout (and proxy_connect_timeout) to a few seconds${passedOn === 0 ? ', and pass a request that timed out to the next host (tasks 3 and 4)' : ' (task 4)'}`;
      assert(summary.errors === 0, `${summary.errors} GET failed while ${frozen.name} was frozen (${describeFailures(failures)}): ${why}`);
      target(
        `slowest GET ${formatSeconds(worstMs)} ≤ proxy_read_timeout ${formatSeconds(readTimeout)} + ${formatSeconds(FREEZE_SLACK_MS)}`,
        worstMs <= readTimeout + FREEZE_SLACK_MS,
        `a GET waited ${formatSeconds(worstMs)} for a frozen host: ${timeoutLine}, and nothing else should hold a request that long (task 4)`,
      );
      // The passive health check: once a request to the frozen host has timed out, nginx
      // leaves the host out (max_fails within fail_timeout) and sends it nothing new.
      const toFrozen = duringLoad.filter((passage) => passage.upstreams[0] === `${frozen.address}:${frozen.port}`);
      const startedAt = (passage: Passage) => passage.endedAt - passage.seconds * 1000;
      const firstTimeout = Math.min(...toFrozen.map((passage) => startedAt(passage) + readTimeout));
      const late = toFrozen.filter((passage) => startedAt(passage) > firstTimeout + HEALTH_SLACK_MS);
      note(`requests sent to ${frozen.name} more than ${formatSeconds(HEALTH_SLACK_MS)} after its first timeout: ${late.length}`);
      assert(
        late.length <= MAX_LATE_TO_FROZEN,
        `nginx went on sending requests to frozen ${frozen.name} after its first timeout (${late.length} more), each waiting out the read timeout: leave max_fails and fail_timeout on, e.g. max_fails=1 fail_timeout=10s on every server line, so a host that fails is left out for a while (task 1)`,
      );
    } finally {
      frozen.server.signalAll('SIGCONT');
    }
  });

  it('never sends a POST twice', async function () {
    // Another host than the one frozen before, which nginx may still be leaving out.
    const frozen = hosts[0];
    frozen.server.signalAll('SIGSTOP');
    try {
      const { post, went } = await postToFrozen(frozen);
      if (!post) throw new VerdictError(`none of ${POST_TRIES} POST through nginx was passed to ${frozen.name} (${frozen.address}:${frozen.port}) first; they went to: ${went.join(', ')}. Is it in the upstream (task 1)?`);
      note(`a POST to frozen ${frozen.name}: passed to ${post.upstreams.join(', ')}, answered ${post.status} after ${formatSeconds(post.seconds * 1000)}`);
      assert(
        post.upstreams.length === 1,
        `a POST that reached frozen ${frozen.name} was sent again to ${post.upstreams.slice(1).join(', ')}, though the first host may have acted on it already: nginx never passes on a request with a non-idempotent method once it was sent, unless proxy_next_upstream says non_idempotent. Take that out (task 3)`,
      );
    } finally {
      frozen.server.signalAll('SIGCONT');
    }
  });

  it('deploys host by host under load, losing no request and replacing every worker', async function () {
    await waitForEveryHost();
    const workersBefore = new Map(hosts.map((host) => [host, host.server.workerPids()]));
    const reloads: Reload[] = [];
    const started = performance.now();
    const load = steadyLoad(`${nginxUrl}/light`, DEPLOY_LOAD_SECONDS);
    await sleep(500);
    const deploy = await runDeploy(balancer, hosts, reloads, started);
    const { summary, failures } = await load;
    for (const reload of reloads) {
      note(`${reload.host.name}: reload from ${formatSeconds(reload.startedMs)} to ${reload.endedMs === undefined ? 'never done' : formatSeconds(reload.endedMs)}${reload.error ? ` (${reload.error})` : ''}`);
    }
    note(`the GET load meanwhile: ${summary.requests} requests, ${summary.errors} failed`);
    if (deploy.error) throw new VerdictError(`rollingDeploy(hosts) failed: ${deploy.error}`);
    if (!deploy.done) throw new VerdictError(`rollingDeploy(hosts) had not finished after ${DEPLOY_TIMEOUT_MS / 1000} s: await each host's reload() (task 6)`);
    const untouched = hosts.filter((host) => !reloads.some((reload) => reload.host === host));
    assert(reloads.length > 0, 'rollingDeploy(hosts) reloaded no host: call reload() on each host, one at a time (task 6)');
    assert(untouched.length === 0, `rollingDeploy(hosts) never reloaded ${untouched.map((host) => host.name).join(', ')}: reload every host (task 6)`);
    const overlapping = findOverlap(reloads);
    assert(
      !overlapping,
      `${overlapping?.[0]} and ${overlapping?.[1]} were reloading at the same time: await one host's reload() before you start the next, so a bad release reaches one host, not all of them (task 6)`,
    );
    assert(summary.errors === 0, `${summary.errors} requests failed during the deploy (${describeFailures(failures)})`);
    const kept = hosts.flatMap((host) => host.server.workerPids().filter((pid) => workersBefore.get(host)!.includes(pid)));
    assert(kept.length === 0, `workers ${kept.join(', ')} still run the old release after the deploy`);
  });

  it('stops the deploy at the first host whose new release crashes', async function () {
    await waitForEveryHost();
    // A release that crashes on every host, whichever the deploy takes first.
    for (const host of hosts) fs.writeFileSync(host.badRelease, '');
    const reloads: Reload[] = [];
    try {
      const deploy = await runDeploy(balancer, hosts, reloads, performance.now(), FAILED_RELOAD_AFTER_MS);
      note(`with a release that crashes, reported ${formatSeconds(FAILED_RELOAD_AFTER_MS)} into a host's reload: ${reloads.map((reload) => `${reload.host.name} ${reload.error ? `failed at ${formatSeconds(reload.endedMs!)}` : reload.endedMs === undefined ? 'unfinished' : 'reloaded'} (started at ${formatSeconds(reload.startedMs)})`).join(', ')}; rollingDeploy ${deploy.error ? `rejected: ${deploy.error}` : describeSettled(deploy)}`);
      assert(reloads.length > 0, 'rollingDeploy(hosts) reloaded no host: call reload() on each host, one at a time (task 6)');
      const [first, ...beyond] = reloads;
      const early = beyond.filter((reload) => first.endedMs === undefined || reload.startedMs < first.endedMs);
      const firstState = first.endedMs === undefined ? `was still unfinished when rollingDeploy ${describeSettled(deploy)}` : `failed at ${formatSeconds(first.endedMs)}`;
      const together = early.every((reload) => reload.startedMs - first.startedMs < TOGETHER_MS);
      assert(
        early.length === 0,
        `rollingDeploy started ${early.map((reload) => reload.host.name).join(', ')} while ${first.host.name}'s reload was still running (it ${firstState}): ${together ? 'await each host\'s reload() before the next, in a for … of loop (Promise.all, or forEach with an async callback, starts them all at once)' : 'await reload() itself, not a timer or a race'}, so a failure that comes late still stops the deploy (task 6)`,
      );
      const retried = beyond.filter((reload) => reload.host === first.host);
      assert(
        retried.length === 0,
        `after ${first.host.name}'s reload failed, rollingDeploy retried ${first.host.name} (${retried.length} more time${retried.length === 1 ? '' : 's'}${deploy.done || deploy.error ? '' : `, and had not settled after ${DEPLOY_TIMEOUT_MS / 1000} s`}): a release that crashes fails again on every try. Stop at the first failure and reject, so whoever deploys fixes the release (task 6)`,
      );
      assert(
        beyond.length === 0,
        `after ${first.host.name}'s reload failed, rollingDeploy went on to ${beyond.map((reload) => reload.host.name).join(', ')}: stop at the first failure, so the other hosts keep the release that works (task 6)`,
      );
      assert(deploy.error !== undefined, `rollingDeploy(hosts) ${describeSettled(deploy)} though ${first.host.name}'s reload failed: let the failure reject it, so whoever deploys learns of it (task 6)`);
    } finally {
      for (const host of hosts) fs.rmSync(host.badRelease, { force: true });
    }
  });

  it('answers GETs within its timeouts when a host drops off the network', async function () {
    const lost = hosts[HOSTS - 1];
    if (!lost.testHost) {
      note(`not checked: a host that drops off the network (SYNs unanswered) needs the hosts in network namespaces, and here they are ports of 127.0.0.1 (${pool?.loopbackBecause}); proxy_connect_timeout is not tried (task 4)`);
      this.skip();
    }
    await waitForEveryHost();
    const config = readConfig(nginx!);
    const connectTimeout = readDuration(locationOf(config), 'proxy_connect_timeout') ?? NGINX_DEFAULT_CONNECT_TIMEOUT_MS;
    const readTimeout = readTimeoutOf(config);
    const bound = Math.max(connectTimeout, readTimeout) + FREEZE_SLACK_MS;
    const restore = dropOffNetwork(lost.testHost);
    try {
      const { summary, failures, worstMs } = await steadyLoad(`${nginxUrl}/light`, OFF_NETWORK_LOAD_SECONDS);
      note(`${lost.name} off the network (its replies swallowed in its namespace) under a ${OFF_NETWORK_LOAD_SECONDS} s GET load: ${summary.requests} requests, ${summary.errors} failed; the slowest took ${formatSeconds(worstMs)}`);
      const timeouts = `your proxy_connect_timeout is ${formatSeconds(connectTimeout)}${connectTimeout === NGINX_DEFAULT_CONNECT_TIMEOUT_MS ? " (nginx's default)" : ''}, proxy_read_timeout ${formatSeconds(readTimeout)}`;
      const why =
        connectTimeout > STEADY_LOAD.timeoutMs
          ? `${timeouts}. A host off the network answers no SYN, so each new connection to it waits out proxy_connect_timeout, and a client gives up first: set proxy_connect_timeout to a second or two, so the request goes to the next host (task 4)`
          : `${timeouts}: pass a request whose connect timed out to the next host, with timeout in proxy_next_upstream (task 3)`;
      assert(summary.errors === 0, `${summary.errors} GET failed while ${lost.name} was off the network (${describeFailures(failures)}): ${why}`);
      target(
        `slowest GET ${formatSeconds(worstMs)} ≤ the longer of proxy_connect_timeout and proxy_read_timeout + ${formatSeconds(FREEZE_SLACK_MS)} = ${formatSeconds(bound)}`,
        worstMs <= bound,
        `a GET waited ${formatSeconds(worstMs)} while ${lost.name} was off the network: ${timeouts}. Keep both to a few seconds (task 4)`,
      );
    } finally {
      restore();
    }
  });

  it('leaves no host, namespace, nginx or worker behind', async function () {
    const groups = [...hosts.map((host) => host.server.pid), nginx!.pid];
    const killed = await pool!.stop();
    await nginx!.stop();
    const alive = groups.filter((pid) => isGroupAlive(pid));
    assert(alive.length === 0, `process groups ${alive.join(', ')} still run`);
    const left = listOurs();
    assert(left.length === 0, `left behind: ${left.join(', ')}`);
    const namespaces = hosts.filter((host) => host.testHost).length;
    note(`stopped ${hosts.length} hosts${killed.length > 0 ? ` (pids ${killed.join(', ')} needed SIGKILL)` : ''} and nginx; ${namespaces} namespaces removed`);
  });

  // Until every host answers directly, and nginx has them all back (its fail_timeout).
  async function waitForEveryHost(): Promise<void> {
    for (const host of hosts) {
      if (host.testHost) assertTestHost(host.address);
      await send('GET', `http://${host.address}:${host.port}/light`, STEADY_LOAD.timeoutMs);
    }
  }

  // A POST at a time through nginx until one reaches the frozen host: its access-log line,
  // or where they all went.
  async function postToFrozen(frozen: Host): Promise<{ post?: Passage; went: string[] }> {
    const target = `${frozen.address}:${frozen.port}`;
    const went: string[] = [];
    for (let i = 0; i < POST_TRIES; i++) {
      const uri = `/light?post=${i}`;
      await send('POST', `${nginxUrl}${uri}`, STEADY_LOAD.timeoutMs).catch(() => undefined);
      const passage = await nginx!.passageOf('POST', uri);
      if (passage?.upstreams[0] === target) return { post: passage, went };
      went.push(passage ? `${passage.upstreams.join(' then ') || 'no host'} (${passage.status})` : 'not in the log');
    }
    return { went };
  }
});

// One host's reload as the deploy ran it, in ms since the deploy started.
interface Reload {
  host: Host;
  startedMs: number;
  // When it resolved or rejected.
  endedMs?: number;
  error?: string;
}

interface DeployOutcome {
  done: boolean;
  error?: string;
}

// Runs the learner's rollingDeploy() with hosts whose reload() records when it ran. A
// failed reload is reported no sooner than `failAfterMs` after it started. A deploy still
// running after DEPLOY_TIMEOUT_MS is given up on: a reload it asks for then never settles,
// so a deploy that retries forever stops reloading the hosts.
async function runDeploy(balancer: Balancer, hosts: Host[], reloads: Reload[], since: number, failAfterMs = 0): Promise<DeployOutcome> {
  let givenUp = false;
  const reloadOnce = async (host: Host) => {
    const startedAt = performance.now();
    const reload: Reload = { host, startedMs: startedAt - since };
    reloads.push(reload);
    try {
      await reloadHost(host);
      reload.endedMs = performance.now() - since;
    } catch (error) {
      await sleep(startedAt + failAfterMs - performance.now());
      reload.endedMs = performance.now() - since;
      reload.error = (error as Error).message;
      throw error;
    }
  };
  const deployHosts = hosts.map((host) => ({
    name: host.name,
    reload: () => {
      if (givenUp) return new Promise<void>(() => {});
      const reload = reloadOnce(host);
      // A deploy that never awaits its reload() would leave this rejection unhandled.
      reload.catch(() => {});
      return reload;
    },
  }));
  const deploy = (async () => balancer.rollingDeploy(deployHosts))().then(
    () => ({ done: true }),
    (error: Error) => ({ done: false, error: error?.message ?? String(error) }),
  );
  const outcome = await Promise.race([deploy, sleep(DEPLOY_TIMEOUT_MS, { done: false })]);
  givenUp = true;
  return outcome;
}

function describeSettled(deploy: DeployOutcome): string {
  if (deploy.error !== undefined) return 'rejected';
  return deploy.done ? 'resolved' : `had not settled after ${DEPLOY_TIMEOUT_MS / 1000} s`;
}

// SIGHUP to the host's primary; resolves on its "reload done" line, rejects on "reload stopped".
async function reloadHost(host: Host): Promise<void> {
  const stdoutFrom = host.server.stdout.length;
  const stderrFrom = host.server.stderr.length;
  host.server.signal('SIGHUP');
  const deadline = performance.now() + RELOAD_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const out = host.server.stdout.slice(stdoutFrom) + host.server.stderr.slice(stderrFrom);
    if (/reload done/.test(out)) return;
    const stopped = out.match(/reload stopped[^\n]*/);
    if (stopped) throw new Error(`${host.name}: ${stopped[0]}`);
    await sleep(50);
  }
  throw new Error(`${host.name}: no "reload done" within ${RELOAD_TIMEOUT_MS / 1000} s`);
}

async function importBalancer(): Promise<Balancer> {
  const file = targetFile();
  const module = await callLearner<Partial<Balancer>>(`importing ${relativeToRepo(file)}`, () => import(file));
  if (typeof module.nginxConfig !== 'function') throw new VerdictError(`${relativeToRepo(file)} exports no function nginxConfig(): keep the starter's export`);
  if (typeof module.rollingDeploy !== 'function') throw new VerdictError(`${relativeToRepo(file)} exports no function rollingDeploy(): keep the starter's export`);
  const keepAlive = module.HOST_KEEP_ALIVE_TIMEOUT_MS;
  if (!Number.isInteger(keepAlive) || keepAlive! <= 0) throw new VerdictError(`HOST_KEEP_ALIVE_TIMEOUT_MS is ${String(keepAlive)}: export it as a whole number of ms`);
  return module as Balancer;
}

async function callLearner<T>(call: string, run: () => T | Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw new VerdictError(`${call} threw: ${(error as Error)?.message ?? String(error)}`);
  }
}

function readConfig(nginx: Nginx): string {
  return fs.readFileSync(path.join(nginx.dir, 'nginx.conf'), 'utf8').replace(/#.*$/gm, '');
}

function upstreamBlock(config: string): string {
  return config.match(/upstream\s+\S+\s*\{[^}]*\}/)?.[0] ?? '';
}

function locationOf(config: string): string {
  return config.replace(/upstream\s+\S+\s*\{[^}]*\}/g, '');
}

// The location's proxy_read_timeout, or nginx's default.
function readTimeoutOf(config: string): number {
  return readDuration(locationOf(config), 'proxy_read_timeout') ?? NGINX_DEFAULT_READ_TIMEOUT_MS;
}

// nginx's time units. A value may combine them, most significant first: 1m30s, "1h 30m".
const TIME_UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

// A duration directive's value in ms (nginx reads a bare number as seconds), or undefined
// where the config does not set it.
function readDuration(text: string, directive: string): number | undefined {
  const match = text.match(new RegExp(`(?:^|[\\s;{])${directive}\\s+([^;]+);`));
  if (!match) return undefined;
  const value = match[1].trim().replace(/^(["'])(.*)\1$/, '$2');
  if (!/^(\s*\d+(ms|s|m|h|d|w|M|y)?)+\s*$/.test(value)) throw new VerdictError(`${directive} ${value}: not a time nginx reads (a number and a unit: 500ms, 3s, 1m30s)`);
  let ms = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+)(ms|s|m|h|d|w|M|y)?/g)) ms += Number(amount) * TIME_UNITS[unit ?? 's'];
  return ms;
}

// Why a host got no request, read from the config.
function whyMissed(config: string, missed: Host[]): string {
  const upstream = upstreamBlock(config);
  const name = upstream.match(/upstream\s+(\S+)/)?.[1];
  const absent = missed.filter((host) => !upstream.includes(`${host.address}:${host.port}`));
  if (absent.length === missed.length) return 'the upstream has no server line for them: put one there for every host';
  if (absent.length > 0) return `${absent.map((host) => host.name).join(', ')} ${absent.length === 1 ? 'has' : 'have'} no server line in the upstream: put one there for every host`;
  const serverLine = (host: Host) => upstream.match(new RegExp(`server\\s+${host.address.replace(/\./g, '\\.')}:${host.port}\\b[^;]*;`))?.[0] ?? '';
  const marked = missed.filter((host) => /\s(backup|down)\b/.test(serverLine(host)));
  if (marked.length > 0) return `${marked.map((host) => `"${serverLine(host)}"`).join(', ')}: a host marked backup gets requests only when every other host is down, one marked down none at all; take the mark off`;
  const balancing = upstream.match(/^\s*(ip_hash|hash\s[^;]*|sticky[^;]*);/m)?.[1];
  if (balancing) return `"${balancing}" sends every request of a client to one host, and this check's clients all come from 127.0.0.1: keep nginx's default round-robin (or least_conn), and let no host need a client's earlier requests`;
  const proxyPass = locationOf(config).match(/proxy_pass\s+([^;]+);/)?.[1];
  if (name && proxyPass && !new RegExp(`^https?://${name}(/|$)`).test(proxyPass)) return `proxy_pass sends every request to ${proxyPass}, not to the upstream: proxy_pass http://${name}`;
  return 'every host is in the upstream, yet nginx sent this one nothing: look for a weight, a max_conns or a balancing method in the upstream';
}

// Why nginx opened a new connection to a host for each request, read from the config.
function whyNotReused(config: string): string {
  const upstream = upstreamBlock(config);
  const location = locationOf(config);
  const keepalive = Number(upstream.match(/^\s*keepalive\s+(\d+)\s*;/m)?.[1] ?? 0);
  const connection = location.match(/proxy_set_header\s+Connection\s+([^;]*);/i)?.[1].trim();
  if (keepalive === 0) return 'add keepalive to the upstream, so that nginx keeps idle connections to the hosts open';
  // A balancing method replaces the keep-alive pool that keepalive set up before it.
  const methodAfter = upstream.slice(upstream.search(/^\s*keepalive\s+\d+\s*;/m)).match(/^\s*(least_conn|ip_hash|hash\s[^;]*|random[^;]*)\s*;/m)?.[1];
  if (methodAfter) {
    const method = methodAfter.split(/\s/)[0];
    return `${methodAfter} comes after keepalive in the upstream, and nginx then drops the keepalive (it only warns "load balancing method redefined"): write ${method} before keepalive, as nginx's docs ask of every method but round-robin`;
  }
  if (!/proxy_http_version\s+1\.1\s*;/.test(location) || connection === undefined) {
    return 'nginx speaks HTTP/1.0 to upstreams and asks to close each connection: set proxy_http_version 1.1 and proxy_set_header Connection ""';
  }
  if (/^\$http_connection$/i.test(connection)) {
    return `proxy_set_header Connection ${connection} passes on what the client said about its own connection, and these clients said close: nginx's connection to the host is another hop, so send it an empty Connection header, ""`;
  }
  if (connection.includes('$')) return whyVariableCloses(config, connection);
  if (/close/i.test(connection)) return `proxy_set_header Connection ${connection} asks each host to close the connection after its answer: send an empty Connection header, ""`;
  if (keepalive < REUSE_CONCURRENCY) return `keepalive ${keepalive} keeps at most ${keepalive} idle connection${keepalive === 1 ? '' : 's'} to the hosts; with ${REUSE_CONCURRENCY} requests at a time the others are closed after each answer: keep more than the requests you expect in flight, e.g. 16`;
  return 'nginx closed its connections to the hosts after each answer: compare your keep-alive lines with the README';
}

// What these clients' requests carry, as nginx variables: no Upgrade, and "Connection: close".
const REUSE_REQUEST_VARIABLES: Record<string, string> = { $http_upgrade: '', $http_connection: 'close' };

// Why a Connection header built from a variable asked the hosts to close: a map's value
// for these requests where the config maps it, the variable's name otherwise.
function whyVariableCloses(config: string, connection: string): string {
  const variable = connection.replace(/^(["'])(.*)\1$/, '$2');
  const map = [...config.matchAll(/map\s+(\S+)\s+(\S+)\s*\{([^}]*)\}/g)].find((found) => found[2] === variable);
  if (!map) return `proxy_set_header Connection ${connection} sends the value of ${variable}, which for these requests was not empty: send an empty Connection header, ""`;
  const [, source, , body] = map;
  const input = REUSE_REQUEST_VARIABLES[source.toLowerCase()];
  const value = input === undefined ? undefined : mapValue(body, input);
  if (value === undefined) return `proxy_set_header Connection ${connection} takes its value from your map of ${source}, and for these requests it asked the hosts to close: map a request that asks for nothing special to "", the empty header keep-alive needs`;
  return `your map gives ${variable} the value ${value || '""'} for these requests (their ${source} is ${input ? `"${input}"` : 'empty'}), so proxy_set_header Connection ${connection} asks each host to close the connection after its answer: map that case to "" instead, the empty header keep-alive needs (keep upgrade for WebSockets)`;
}

// The value a map's body gives `input`: an exact key, else the first regex that matches,
// else default (as nginx picks them), unquoted. Undefined where nothing matches.
function mapValue(body: string, input: string): string | undefined {
  const unquote = (text: string) => text.replace(/^(["'])(.*)\1$/, '$2');
  const entries = [...body.matchAll(/^\s*(\S+)\s+([^;]*?)\s*;/gm)].map(([, key, value]) => ({ key, value: unquote(value) }));
  const exact = entries.find(({ key }) => !key.startsWith('~') && key !== 'default' && unquote(key) === input);
  const regex = entries.find(({ key }) => key.startsWith('~') && new RegExp(unquote(key.replace(/^~\*?/, '')), key.startsWith('~*') ? 'i' : '').test(input));
  return (exact ?? regex ?? entries.find(({ key }) => key === 'default'))?.value;
}

// Why requests through nginx failed, read from the config and nginx's error log.
function whyFailedThrough(config: string, nginx: Nginx): string {
  const maxConns = Number(upstreamBlock(config).match(/\smax_conns=(\d+)/)?.[1] ?? 0);
  if (maxConns > 0) {
    return `max_conns=${maxConns} lets each host have ${maxConns} connection${maxConns === 1 ? '' : 's'} at a time, and with ${REUSE_CONCURRENCY} requests at a time on ${HOSTS} hosts nginx found every host at its cap and answered 502 at once (open-source nginx does not queue them): take max_conns off, or set it well above the requests you expect in flight on one host (task 1)`;
  }
  const logged = nginx.errorLog().match(/\[(?:error|crit|alert)\][^\n]*/g)?.at(-1);
  return logged ? `nginx's error log says: ${logged.slice(0, 300)}` : 'nginx logged no error for them';
}

// The statuses nginx answered failed requests with, from its access log, or loadtest's codes.
function describeStatuses(failed: Passage[], errorCodes: Record<string, number>): string {
  const counts = new Map<number, number>();
  for (const passage of failed) counts.set(passage.status, (counts.get(passage.status) ?? 0) + 1);
  if (counts.size === 0) return `loadtest's codes: ${JSON.stringify(errorCodes)}`;
  return [...counts].map(([status, count]) => `${count} answered ${status}`).join(', ');
}

// Why nginx passed no request on to another host, read from the config, if it shows.
function whyNotPassedOn(config: string, readTimeout: number): string | undefined {
  const location = locationOf(config);
  const tries = Number(location.match(/proxy_next_upstream_tries\s+(\d+)\s*;/)?.[1] ?? 0);
  if (tries === 1) return 'proxy_next_upstream_tries 1 allows one try in all, so nginx passes no request on: 2 is the first host and one more (task 3)';
  const giveUp = readDuration(location, 'proxy_next_upstream_timeout');
  if (giveUp !== undefined && giveUp > 0 && giveUp <= readTimeout) {
    return `proxy_next_upstream_timeout ${formatSeconds(giveUp)} is up before the read timeout (${formatSeconds(readTimeout)}) has fired, so a request that timed out is never passed on: leave it out, or make it longer than the read timeout (task 3)`;
  }
  const passesOn = location.match(/proxy_next_upstream\s+([^;]*);/)?.[1];
  if (passesOn !== undefined && !/\btimeout\b/.test(passesOn)) {
    return 'nginx passed no request on: proxy_next_upstream must list timeout (and error), so a request a host holds past the read timeout goes to the next host (task 3)';
  }
  return undefined;
}

function findOverlap(reloads: Reload[]): [string, string] | undefined {
  for (const a of reloads) {
    for (const b of reloads) {
      if (a === b || b.startedMs < a.startedMs) continue;
      if (b.startedMs < (a.endedMs ?? Infinity)) return [a.host.name, b.host.name];
    }
  }
  return undefined;
}

// An open-loop GET load of STEADY_LOAD.rps for `seconds`: its summary, each failure as
// loadtest reported it, and the slowest request (a client gives up at its timeout).
async function steadyLoad(url: string, seconds: number): Promise<{ summary: LoadSummary; failures: string[]; worstMs: number }> {
  const failures: string[] = [];
  let worstMs = 0;
  const summary = await runLoad({
    url,
    requests: STEADY_LOAD.rps * seconds,
    rps: STEADY_LOAD.rps,
    concurrency: STEADY_LOAD.concurrency,
    timeoutMs: STEADY_LOAD.timeoutMs,
    maxSeconds: seconds + STEADY_LOAD.timeoutMs / 1000,
    onOutcome: (error, body, ms) => {
      worstMs = Math.max(worstMs, ms ?? STEADY_LOAD.timeoutMs);
      if (error) failures.push(`${error}${body ? ` ${body.slice(0, 80)}` : ''}`);
    },
  });
  return { summary, failures, worstMs };
}

function formatSeconds(ms: number): string {
  return ms < 1_000 ? formatMs(ms) : `${Number((ms / 1000).toFixed(2))} s`;
}

function describeFailures(failures: string[]): string {
  const counts = new Map<string, number>();
  for (const failure of failures) counts.set(failure, (counts.get(failure) ?? 0) + 1);
  return [...counts].slice(0, 3).map(([what, count]) => `${count} × ${what}`).join('; ') || 'no detail';
}
