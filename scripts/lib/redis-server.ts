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
    const reply = String(await this.command(['INFO']));
    const value = reply.match(new RegExp(`^${field}:(\\d+)`, 'm'))?.[1];
    if (value === undefined) throw new Error(`Redis INFO has no ${field}`);
    return Number(value);
  }

  // Every key and its PTTL (-1: none): for the checks, on a Redis of a few hundred keys.
  async expiries(): Promise<Map<string, number>> {
    const keys = (await this.command(['KEYS', '*'])) as string[];
    const expiries = new Map<string, number>();
    for (const key of keys) expiries.set(key, Number(await this.command(['PTTL', key])));
    return expiries;
  }

  // One command in RESP, its reply parsed: a string, a number, or an array of them.
  command(args: string[]): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(this.port, this.addresses[0]);
      let reply = '';
      socket.setTimeout(ASK_TIMEOUT_MS, () => socket.destroy(new Error(`Redis did not answer ${args[0]} within ${ASK_TIMEOUT_MS} ms`)));
      socket.on('error', reject);
      socket.on('data', (chunk) => {
        reply += chunk.toString();
        const parsed = parseReply(reply, 0);
        if (parsed) {
          socket.end();
          if (parsed.value instanceof Error) reject(parsed.value);
          else resolve(parsed.value);
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

type Reply = string | number | null | Reply[];

// The RESP2 reply that starts at `at`, and where it ends; undefined until all of it came.
// (Lengths count bytes; the checks' keys and INFO are ASCII, where bytes are characters.)
function parseReply(text: string, at: number): { value: Reply | Error; end: number } | undefined {
  const lineEnd = text.indexOf('\r\n', at);
  if (lineEnd < 0) return undefined;
  const line = text.slice(at + 1, lineEnd);
  const next = lineEnd + 2;
  switch (text[at]) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      return text.length >= next + length + 2 ? { value: text.slice(next, next + length), end: next + length + 2 } : undefined;
    }
    case '*': {
      const items: Reply[] = [];
      let end = next;
      for (let i = 0; i < Number(line); i++) {
        const item = parseReply(text, end);
        if (!item) return undefined;
        items.push(item.value as Reply);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      return { value: new Error(`not a RESP reply: ${text.slice(at, at + 40)}`), end: text.length };
  }
}
