// npm run bench:hosts: what lesson 8's nginx settings buy. Three lesson-5 hosts behind
// nginx, first with the lesson's solution config, then with nginx's defaults (every host
// in the upstream, proxy_pass, nothing else), each measured the same way.
import { setTimeout as sleep } from 'node:timers/promises';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, VerdictError } from './lib/errors.ts';
import { countConnections, describeHosts, startHost, startHostPool, type Host } from './lib/host-pool.ts';
import { runLoad } from './lib/load.ts';
import { findNginx, INSTALL_NGINX, startNginx } from './lib/nginx.ts';
import { findFreePort } from './lib/ports.ts';
import { formatMs, formatRate } from './lib/report.ts';
import { HOST_KEEP_ALIVE_TIMEOUT_MS, nginxConfig, type Address } from '../solutions/08-several-hosts/balancer.ts';

const USAGE = `Usage: npm run bench:hosts

Starts three hosts (lesson 5's cluster, one worker each; in network namespaces when run
as root on Linux, otherwise on ports of 127.0.0.1) and runs nginx in front of them twice:
with the lesson-8 solution's config, and with nginx's defaults. For each, prints the
/light throughput through nginx and the connections the hosts accepted for it, then a
steady GET load while one host is killed, and one while another is frozen (SIGSTOP):
the requests that failed and the slowest one. Takes about a minute.

Options:
  --help  show this help`;

const HOSTS = 3;
const THROUGHPUT = { requests: 3_000, concurrency: 10 };
const STEADY = { rps: 60, seconds: 4, timeoutMs: 15_000, concurrency: 40 };
const KILL_AFTER_MS = 1_000;
// nginx leaves a failed host out this long (fail_timeout's default), then tries it again.
const FAIL_TIMEOUT_MS = 10_000;

interface Figures {
  config: string;
  rps: number;
  connectionsPerRequest: number;
  killed: string;
  frozen: string;
}

function defaultsConfig(listen: Address, hosts: Address[]): string {
  return `upstream hosts {\n${hosts.map((host) => `  server ${host.host}:${host.port};\n`).join('')}}\nserver {\n  listen ${listen.host}:${listen.port};\n  location / { proxy_pass http://hosts; }\n}\n`;
}

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), { help: { type: 'boolean', default: false } });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  if (!findNginx()) throw new VerdictError(INSTALL_NGINX);
  const pool = await startHostPool(HOSTS, HOST_KEEP_ALIVE_TIMEOUT_MS);
  try {
    console.log(`hosts: ${describeHosts(pool)}${pool.loopbackBecause ? ` (ports of 127.0.0.1: ${pool.loopbackBecause})` : ''}`);
    const rows: Figures[] = [];
    for (const [name, config] of [['the lesson-8 solution', nginxConfig], ["nginx's defaults", defaultsConfig]] as const) {
      rows.push(await measure(name, config, pool.hosts));
      console.log(`${name}: done`);
    }
    console.log('');
    console.log(`| nginx config | /light through nginx (${THROUGHPUT.concurrency} clients) | new connections per request | GET load, a host killed | GET load, a host frozen |`);
    console.log('|---|---|---|---|---|');
    for (const row of rows) console.log(`| ${row.config} | ${formatRate(row.rps)} | ${row.connectionsPerRequest.toFixed(2)} | ${row.killed} | ${row.frozen} |`);
    console.log('');
    console.log(`Each GET load: ${STEADY.rps} requests a second for ${STEADY.seconds} s; a client gives up after ${STEADY.timeoutMs / 1000} s, which counts as failed.`);
  } finally {
    await pool.stop();
  }
  return EXIT_PASS;
}

async function measure(name: string, config: (listen: Address, hosts: Address[]) => string, hosts: Host[]): Promise<Figures> {
  const port = await findFreePort();
  const nginx = await startNginx(config({ host: '127.0.0.1', port }, hosts.map((host) => ({ host: host.address, port: host.port }))), port);
  const url = `http://127.0.0.1:${port}/light`;
  try {
    const before = countConnections(hosts);
    const throughput = await runLoad({ url, requests: THROUGHPUT.requests, concurrency: THROUGHPUT.concurrency, keepAlive: true });
    const connectionsPerRequest = (countConnections(hosts) - before) / throughput.requests;

    const victim = hosts[HOSTS - 1];
    const killedLoad = steadyLoad(url);
    await sleep(KILL_AFTER_MS);
    victim.server.exitExpected = true;
    victim.server.signalAll('SIGKILL');
    const killed = await killedLoad;
    victim.server = await startHost(victim);
    await sleep(FAIL_TIMEOUT_MS);

    const frozenHost = hosts[1];
    frozenHost.server.signalAll('SIGSTOP');
    const frozen = await steadyLoad(url).finally(() => frozenHost.server.signalAll('SIGCONT'));
    return { config: name, rps: throughput.rps, connectionsPerRequest, killed, frozen };
  } finally {
    await nginx.stop();
  }
}

async function steadyLoad(url: string): Promise<string> {
  let worstMs = 0;
  const summary = await runLoad({
    url,
    requests: STEADY.rps * STEADY.seconds,
    rps: STEADY.rps,
    concurrency: STEADY.concurrency,
    timeoutMs: STEADY.timeoutMs,
    maxSeconds: STEADY.seconds + STEADY.timeoutMs / 1000,
    onOutcome: (_error, _body, ms) => (worstMs = Math.max(worstMs, ms ?? STEADY.timeoutMs)),
  });
  return `${summary.errors} of ${summary.requests} failed, slowest ${formatMs(worstMs)}`;
}

runCommand(USAGE, main);
