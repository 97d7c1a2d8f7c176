import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_INTERVAL_MS = 50;
const CONNECT_TIMEOUT_MS = 1000;

// Ask the kernel for ports nobody is using, then give them back for servers to take.
// Every probe stays open until all have a port, so no two of the ports are the same:
// asked one after another, the kernel may hand out a port it has just been given back.
export async function findFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const probes = await Promise.allSettled(Array.from({ length: count }, () => listenOnAnyPort(host)));
  const open = probes.flatMap((probe) => (probe.status === 'fulfilled' ? [probe.value] : []));
  const ports = open.map((probe) => (probe.address() as net.AddressInfo).port);
  await Promise.all(open.map((probe) => new Promise((resolve) => probe.close(resolve))));
  const failed = probes.find((probe): probe is PromiseRejectedResult => probe.status === 'rejected');
  if (failed) throw failed.reason;
  return ports;
}

export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await findFreePorts(1, host);
  return port;
}

function listenOnAnyPort(host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, host, () => resolve(probe));
  });
}

export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

// Resolves true once the port accepts a connection, false if `giveUp` resolves first.
export async function waitForPort(host: string, port: number, timeoutMs: number, giveUp?: Promise<unknown>): Promise<boolean> {
  let stopped = false;
  void giveUp?.then(() => (stopped = true));
  const deadline = Date.now() + timeoutMs;
  while (!stopped && Date.now() < deadline) {
    if (await canConnect(host, port)) return true;
    await sleep(POLL_INTERVAL_MS);
  }
  return false;
}
