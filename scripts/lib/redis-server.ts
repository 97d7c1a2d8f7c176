// Redis for lesson 10, started the way the check needs it and no other: redis-server in
// the foreground, in a process group of its own, on a port the check chose, with its
// config and data folder in a fresh temporary folder and nothing saved to disk. It never
// reads or touches the system's Redis (its config, its data, its service).
//
// The check can make it hang (SIGSTOP: the connections stay open and nothing answers, as
// a Redis stuck in a long command or a slow disk would), kill it, and start it again on
// the same port, as an outage and its end.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitForPort } from './ports.ts';

export const INSTALL_REDIS = 'redis-server is not installed. Lesson 10 runs a real one: sudo apt-get install redis-server (Debian, Ubuntu), or brew install redis (macOS)';
// Its folder's name is in its process title too, so a leftover can be told from others.
export const REDIS_DIR_PREFIX = 'course-redis-';

const PLACES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server', '/opt/homebrew/bin/redis-server'];
const START_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 2_000;
const ASK_TIMEOUT_MS = 2_000;

const started = new Set<RedisServer>();
process.on('exit', () => {
  for (const redis of started) redis.killSync();
});

export function findRedis(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  return onPath || PLACES.find((place) => fs.existsSync(place));
}

export class RedisServer {
  readonly port: number;
  // The addresses it listens on; the first is 127.0.0.1, where the check talks to it.
  readonly addresses: string[];
  readonly dir: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  output = '';

  constructor(port: number, addresses: string[]) {
    this.port = port;
    this.addresses = addresses;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), REDIS_DIR_PREFIX));
    started.add(this);
  }

  url(address = this.addresses[0]): string {
    return `redis://${address}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  // Starts it, or starts it again after kill(), on the same port, with no data.
  async start(): Promise<void> {
    const binary = findRedis();
    if (!binary) throw new Error(INSTALL_REDIS);
    const config = path.join(this.dir, 'redis.conf');
    fs.writeFileSync(
      config,
      [`port ${this.port}`, `bind ${this.addresses.join(' ')}`, 'protected-mode no', `dir ${this.dir}`, 'save ""', 'appendonly no', 'daemonize no', 'logfile ""', `proc-title-template "{title} {listen-addr} {config-file}"`, ''].join('\n'),
    );
    const child = spawn(binary, [config], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    for (const stream of [child.stdout!, child.stderr!]) stream.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    if (!(await waitForPort(this.addresses[0], this.port, START_TIMEOUT_MS, this.exited))) {
      await this.stop();
      throw new Error(`redis-server did not listen on ${this.addresses[0]}:${this.port} within ${START_TIMEOUT_MS / 1000} s: ${this.output.trim().split('\n').slice(-5).join('\n')}`);
    }
  }

  // Stops answering, with every connection kept open; resume() goes on.
  pause(): void {
    this.signal('SIGSTOP');
  }

  resume(): void {
    this.signal('SIGCONT');
  }

  // Gone at once, as a crash or a lost machine: its data goes with it.
  async kill(): Promise<void> {
    this.signal('SIGCONT');
    this.signal('SIGKILL');
    await this.exited;
  }

  // Ends it and removes its folder.
  async stop(): Promise<void> {
    if (this.running) {
      this.signal('SIGCONT');
      this.signal('SIGTERM');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
      if (!stopped) this.signal('SIGKILL');
      await this.exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    started.delete(this);
  }

  killSync(): void {
    this.signal('SIGCONT');
    this.signal('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  // A field of INFO, such as total_connections_received, asked over a connection of its own.
  async info(field: string): Promise<number> {
    const reply = await this.command(['INFO']);
    const value = reply.match(new RegExp(`^${field}:(\\d+)`, 'm'))?.[1];
    if (value === undefined) throw new Error(`Redis INFO has no ${field}`);
    return Number(value);
  }

  // One command in RESP, its reply as text: enough for INFO and the like.
  command(args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, this.addresses[0]);
      let reply = '';
      socket.setTimeout(ASK_TIMEOUT_MS, () => socket.destroy(new Error(`Redis did not answer ${args[0]} within ${ASK_TIMEOUT_MS} ms`)));
      socket.on('error', reject);
      socket.on('data', (chunk) => {
        reply += chunk.toString();
        if (isComplete(reply)) {
          socket.end();
          resolve(reply);
        }
      });
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`);
    });
  }

  private signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.child!.pid!, signal);
    } catch {
      // The group is gone.
    }
  }
}

export async function startRedis(port: number, addresses = ['127.0.0.1']): Promise<RedisServer> {
  const redis = new RedisServer(port, addresses);
  try {
    await redis.start();
  } catch (error) {
    await redis.stop();
    throw error;
  }
  return redis;
}

// A simple reply (+OK, :1, -ERR) ends at its first CRLF; a bulk string ($n) once n bytes
// follow its header.
function isComplete(reply: string): boolean {
  if (reply[0] !== '$') return reply.includes('\r\n');
  const header = reply.indexOf('\r\n');
  if (header < 0) return false;
  const length = Number(reply.slice(1, header));
  return length < 0 || Buffer.byteLength(reply) >= header + 2 + length + 2;
}
