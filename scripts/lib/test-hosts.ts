// Test hosts for lesson 8 (several hosts behind nginx): each one a Linux network
// namespace with an address of its own, joined to this machine by a veth pair, as a
// second machine on a network cable would be. The check makes them and removes them;
// it touches no namespace, link or address it did not make.
//
// Every name carries this process's pid (ncc-PID-N, and ncc<PID>a<N> for the link), so
// two checks side by side never meet, and what a killed check left can be told apart.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export interface TestHost {
  namespace: string;
  // The host's address, inside its namespace; the machine's end of the link is `gateway`.
  address: string;
  gateway: string;
  link: string;
}

// Private addresses, one /30 per host: 10.X.N.1 on this machine, 10.X.N.2 in host N.
// X is the first second octet that no address or route of this machine uses.
const SECOND_OCTETS = [213, 214, 215, 216, 217];
const PREFIX = 'ncc';

const made = new Map<string, TestHost>();
let cleanupHooked = false;

// COURSE_LOOPBACK_HOSTS=1 makes a check use ports of 127.0.0.1 where it could make
// namespaces, as it does on macOS: how the course's own tests try that path on Linux.
export const LOOPBACK_HOSTS_ENV = 'COURSE_LOOPBACK_HOSTS';

// Why this machine cannot make test hosts, or undefined if it can.
export function whyNoTestHosts(): string | undefined {
  if (process.env[LOOPBACK_HOSTS_ENV] === '1') return `${LOOPBACK_HOSTS_ENV}=1`;
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'making network namespaces needs root';
  if (ip(['netns', 'list']).status !== 0) return 'the ip command (iproute2) is missing: apt-get install iproute2';
  // Root is not always enough (a container without the capability): try one.
  const probe = `${PREFIX}-${process.pid}-probe`;
  const made = ip(['netns', 'add', probe]);
  ip(['netns', 'delete', probe]);
  if (made.status !== 0) return `this machine cannot make a network namespace (${made.stderr.trim()})`;
  return undefined;
}

export function makeTestHosts(count: number): TestHost[] {
  removeLeftovers();
  const octet = freeSecondOctet();
  const hosts: TestHost[] = [];
  try {
    for (let n = 1; n <= count; n++) hosts.push(makeHost(octet, n));
  } catch (error) {
    removeTestHosts(hosts);
    throw error;
  }
  return hosts;
}

export function removeTestHosts(hosts: TestHost[]): void {
  for (const host of hosts) {
    // The link first: deleting a veth deletes its pair at once, while deleting the
    // namespace leaves this machine's end to the kernel's cleanup, which can still list it
    // a moment later.
    ip(['link', 'delete', host.link]);
    ip(['netns', 'delete', host.namespace]);
    made.delete(host.namespace);
  }
}

// The namespaces and links of this process that exist now: after removeTestHosts(), none.
export function listOurs(): string[] {
  const namespaces = ip(['netns', 'list']).stdout.split('\n').map((line) => line.split(' ')[0]);
  const links = ip(['-o', 'link', 'show']).stdout.split('\n').map((line) => line.split(': ')[1]?.split('@')[0] ?? '');
  return [...namespaces, ...links].filter((name) => name.startsWith(`${PREFIX}-${process.pid}-`) || name.startsWith(`${PREFIX}${process.pid}a`));
}

// Every test-host namespace on this machine, whichever check made it: after a run of the
// course's tests, none.
export function leftoverTestHosts(): string[] {
  if (process.platform !== 'linux') return [];
  return ip(['netns', 'list']).stdout.split('\n').map((line) => line.split(' ')[0]).filter((name) => new RegExp(`^${PREFIX}-\\d+-\\d+$`).test(name));
}

// Throws unless `address` is a test host this process made and its namespace still holds
// it: no request may go to an address that could leave the machine.
export function assertTestHost(address: string): TestHost {
  const host = [...made.values()].find((candidate) => candidate.address === address);
  if (!host) throw new Error(`${address} is not a test host this check made`);
  const inside = ip(['netns', 'exec', host.namespace, 'ip', '-4', '-o', 'addr', 'show']).stdout;
  if (!inside.includes(` ${address}/`)) throw new Error(`namespace ${host.namespace} no longer holds ${address}`);
  return host;
}

// Takes the host off the network as nginx sees it: inside its namespace, a blackhole route
// to this machine's end of the link swallows every packet the host sends back, so SYNs go
// unanswered and its kept connections fall silent. (A link taken down would not do: the
// machine's neighbour lookup fails within 3 s, and connect() gets EHOSTUNREACH, quickly.)
// Returns the undo.
export function dropOffNetwork(host: TestHost): () => void {
  assertTestHost(host.address);
  const route = ['netns', 'exec', host.namespace, 'ip', 'route'];
  run([...route, 'add', 'blackhole', `${host.gateway}/32`]);
  return () => {
    ip([...route, 'del', 'blackhole', `${host.gateway}/32`]);
  };
}

// The command line that runs `command` inside the host's namespace.
export function inHost(host: TestHost, command: string[]): string[] {
  return ['ip', 'netns', 'exec', host.namespace, ...command];
}

function makeHost(octet: number, n: number): TestHost {
  const host: TestHost = {
    namespace: `${PREFIX}-${process.pid}-${n}`,
    address: `10.${octet}.${n}.2`,
    gateway: `10.${octet}.${n}.1`,
    link: `${PREFIX}${process.pid}a${n}`,
  };
  const peer = `${PREFIX}${process.pid}b${n}`;
  hookCleanup();
  run(['netns', 'add', host.namespace]);
  made.set(host.namespace, host);
  run(['link', 'add', host.link, 'type', 'veth', 'peer', 'name', peer]);
  run(['link', 'set', peer, 'netns', host.namespace]);
  run(['addr', 'add', `${host.gateway}/30`, 'dev', host.link]);
  run(['link', 'set', host.link, 'up']);
  const inside = (args: string[]) => run(['netns', 'exec', host.namespace, 'ip', ...args]);
  inside(['link', 'set', 'lo', 'up']);
  inside(['addr', 'add', `${host.address}/30`, 'dev', peer]);
  inside(['link', 'set', peer, 'up']);
  return host;
}

function freeSecondOctet(): number {
  const used = ip(['-4', '-o', 'addr', 'show']).stdout + ip(['-4', 'route', 'show', 'table', 'all']).stdout;
  const octet = SECOND_OCTETS.find((candidate) => !used.includes(`10.${candidate}.`));
  if (octet === undefined) throw new Error(`this machine already uses 10.X for every X in ${SECOND_OCTETS.join(', ')}`);
  return octet;
}

// Namespaces a killed check left: ncc-PID-N whose PID no longer runs.
function removeLeftovers(): void {
  for (const line of ip(['netns', 'list']).stdout.split('\n')) {
    const match = line.match(new RegExp(`^(${PREFIX}-(\\d+)-\\d+)`));
    if (match && !fs.existsSync(`/proc/${match[2]}`)) ip(['netns', 'delete', match[1]]);
  }
}

function hookCleanup(): void {
  if (cleanupHooked) return;
  cleanupHooked = true;
  process.once('exit', () => removeTestHosts([...made.values()]));
}

function run(args: string[]): void {
  const result = ip(args);
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
}

// Where there is no ip command (macOS), as if it had printed nothing and failed.
function ip(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? String(result.error) };
}
