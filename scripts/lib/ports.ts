import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const POLL_INTERVAL_MS = 50;
const CONNECT_TIMEOUT_MS = 1000;

// Ask the kernel for a port nobody is using, then give it back for a server to take.
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
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
