// Lesson 8's hosts, for its check and for npm run bench:hosts: lesson 5's cluster (one
// worker each; lesson 10 runs its own file, with options) on test hosts in network namespaces where this machine can make them,
// otherwise on ports of 127.0.0.1. Each host counts the connections it accepts and takes
// its keepAliveTimeout from the caller (scripts/lib/host-preload.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { heavyRounds } from './calibrate.ts';
import { referenceFile } from './checks.ts';
import { CONNECTION_LINE } from './host-preload.ts';
import { findFreePorts } from './ports.ts';
import { startServer, type ServerProcess } from './server-process.ts';
import { assertTestHost, inHost, makeTestHosts, removeTestHosts, whyNoTestHosts, type TestHost } from './test-hosts.ts';

const HOST_SERVER = referenceFile('05-graceful-reload');
const HOST_PRELOAD = new URL('./host-preload.ts', import.meta.url).href;
// Every namespaced host listens on the same port of its own address, as machines do.
const HOST_PORT = 3000;

export interface Host {
  name: string;
  address: string;
  port: number;
  // The namespace the host runs in, where this machine can make them.
  testHost?: TestHost;
  // While this file exists the host's new workers crash at boot: a bad release.
  badRelease: string;
  keepAliveTimeoutMs: number;
  // The server each host runs, and what it adds to the environment.
  file: string;
  env: Record<string, string>;
  server: ServerProcess;
}

export interface HostPool {
  hosts: Host[];
  // Why the hosts are ports of 127.0.0.1, where they are.
  loopbackBecause?: string;
  stop(): Promise<number[]>;
}

export interface HostPoolOptions {
  file?: string;
  env?: (host: Omit<Host, 'server'>) => Record<string, string>;
  // Called once the hosts' addresses exist, before any host starts: lesson 10 starts its
  // Redis there, on the addresses the hosts reach this machine by.
  before?: (hosts: Omit<Host, 'server'>[]) => Promise<void>;
}

export async function startHostPool(count: number, keepAliveTimeoutMs: number, options: HostPoolOptions = {}): Promise<HostPool> {
  const loopbackBecause = whyNoTestHosts();
  const testHosts = loopbackBecause ? [] : makeTestHosts(count);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'course-hosts-'));
  const stop = async () => {
    const killed = (await Promise.all(hosts.map((host) => host.server?.stop() ?? []))).flat();
    removeTestHosts(testHosts);
    fs.rmSync(scratch, { recursive: true, force: true });
    return killed;
  };
  const hosts: Host[] = [];
  try {
    const loopbackPorts = testHosts.length > 0 ? [] : await findFreePorts(count);
    for (let i = 0; i < count; i++) {
      const testHost = testHosts[i];
      const slot = {
        name: `host ${i + 1}`,
        address: testHost?.address ?? '127.0.0.1',
        port: testHost ? HOST_PORT : loopbackPorts[i],
        testHost,
        badRelease: path.join(scratch, `bad-release-${i + 1}`),
        keepAliveTimeoutMs,
        file: options.file ?? HOST_SERVER,
        env: {},
      };
      hosts.push({ ...slot, server: undefined as unknown as ServerProcess });
    }
    await options.before?.(hosts);
    for (const host of hosts) host.env = options.env?.(host) ?? {};
    await Promise.all(hosts.map(async (host) => (host.server = await startHost(host))));
  } catch (error) {
    await stop();
    throw error;
  }
  return { hosts, loopbackBecause, stop };
}

// Starts (or starts again, after a kill) the host's cluster.
export function startHost(host: Omit<Host, 'server'>): Promise<ServerProcess> {
  if (host.testHost) assertTestHost(host.address);
  return startServer({
    file: host.file,
    host: host.address,
    port: host.port,
    runUnder: host.testHost ? inHost(host.testHost, []) : undefined,
    imports: [HOST_PRELOAD],
    env: {
      WORKERS: '1',
      HEAVY_ROUNDS: String(heavyRounds()),
      HOST_KEEP_ALIVE_TIMEOUT_MS: String(host.keepAliveTimeoutMs),
      CRASH_AT_BOOT_FILE: host.badRelease,
      ...host.env,
    },
  });
}

// The connections every host has accepted so far (what a killed host accepted is lost).
export function countConnections(hosts: Host[]): number {
  return hosts.reduce((sum, host) => sum + host.server.stdout.split(CONNECTION_LINE).length - 1, 0);
}

export function describeHosts(pool: HostPool): string {
  return pool.hosts.map((host) => `${host.address}:${host.port}${host.testHost ? ` (namespace ${host.testHost.namespace})` : ''}`).join(', ');
}
