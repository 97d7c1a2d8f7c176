// nginx for lesson 8, started the way the check needs it and no other: in the
// foreground, in a process group of its own, with its prefix, config, pid file, logs and
// temporary files in a fresh temporary folder, on a port the check chose. It never
// reads or touches the system's nginx (its config, its logs, its service).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitForPort } from './ports.ts';

export const INSTALL_NGINX = 'nginx is not installed. Lesson 8 runs a real one: sudo apt-get install nginx (Debian, Ubuntu), or brew install nginx (macOS)';

// Debian puts nginx in /usr/sbin, which a non-root PATH often lacks; Homebrew in its own.
const PLACES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx', '/opt/homebrew/bin/nginx'];
const START_TIMEOUT_MS = 5_000;
const STOP_GRACE_MS = 3_000;
// nginx writes a request's log line after it has sent the answer, so a client can hold the
// answer before the line is there: how long to wait for it.
const LOG_WAIT_MS = 2_000;
const LOG_POLL_MS = 20;

export function findNginx(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();
  return onPath || PLACES.find((place) => fs.existsSync(place));
}

// One line of nginx's access log, in the format the check sets: every upstream a request
// was passed to, in order (more than one when nginx passed it on after a failure).
export interface Passage {
  method: string;
  uri: string;
  status: number;
  upstreams: string[];
  upstreamStatuses: string[];
  seconds: number;
  // When nginx logged it, the request's end, in ms since the epoch.
  endedAt: number;
}

export class Nginx {
  readonly port: number;
  readonly dir: string;
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private output = '';

  constructor(port: number, dir: string, child: ChildProcess) {
    this.port = port;
    this.dir = dir;
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.child.pid!;
  }

  accessLog(): Passage[] {
    return readIfThere(path.join(this.dir, 'access.log'))
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => {
        const [method, uri, status, upstreams, statuses, seconds, msec] = line.split('|');
        return { method, uri, status: Number(status), upstreams: splitList(upstreams), upstreamStatuses: splitList(statuses), seconds: Number(seconds), endedAt: Number(msec) * 1000 };
      });
  }

  // The access log once it holds at least `lines` lines, or after LOG_WAIT_MS as it is.
  async accessLogOf(lines: number): Promise<Passage[]> {
    const deadline = performance.now() + LOG_WAIT_MS;
    let log = this.accessLog();
    while (log.length < lines && performance.now() < deadline) {
      await sleep(LOG_POLL_MS);
      log = this.accessLog();
    }
    return log;
  }

  // The line of the request `method uri`, once nginx has written it.
  async passageOf(method: string, uri: string): Promise<Passage | undefined> {
    const deadline = performance.now() + LOG_WAIT_MS;
    for (;;) {
      const passage = this.accessLog().find((line) => line.method === method && line.uri === uri);
      if (passage || performance.now() >= deadline) return passage;
      await sleep(LOG_POLL_MS);
    }
  }

  errorLog(): string {
    return readIfThere(path.join(this.dir, 'error.log')) + this.output;
  }

  // Ends nginx (SIGQUIT lets it finish the requests it has), then its whole group, and
  // removes its folder.
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      signalGroup(this.pid, 'SIGQUIT');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
      if (!stopped) signalGroup(this.pid, 'SIGKILL');
      await this.exited;
    }
    // Its workers may outlive the master for a moment.
    signalGroup(this.pid, 'SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Starts nginx with `http` (upstreams and servers) as its http block; the check's own
// lines around it keep every file nginx writes in its temporary folder. A config nginx
// rejects throws with nginx's own message.
export async function startNginx(http: string, port: number): Promise<Nginx> {
  const binary = findNginx();
  if (!binary) throw new Error(INSTALL_NGINX);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'course-nginx-'));
  // Its workers run as an unprivileged user when nginx starts as root, and must reach
  // the temporary files inside.
  fs.chmodSync(dir, 0o755);
  const config = path.join(dir, 'nginx.conf');
  fs.writeFileSync(config, wrapConfig(http, dir));
  const args = ['-p', dir, '-c', config, '-e', path.join(dir, 'error.log')];
  const test = spawnSync(binary, [...args, '-t', '-q'], { encoding: 'utf8' });
  if (test.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`nginx rejects the config: ${test.stderr.trim()}`);
  }
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  const nginx = new Nginx(port, dir, child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  if (!(await waitForPort('127.0.0.1', port, START_TIMEOUT_MS, exited))) {
    await nginx.stop();
    throw new Error(`nginx did not listen on 127.0.0.1:${port} within ${START_TIMEOUT_MS / 1000} s: ${nginx.errorLog().trim()}`);
  }
  return nginx;
}

function wrapConfig(http: string, dir: string): string {
  const inDir = (name: string) => path.join(dir, name);
  return `daemon off;
worker_processes 1;
pid ${inDir('nginx.pid')};
error_log ${inDir('error.log')} warn;
events { worker_connections 1024; }
http {
  log_format course '$request_method|$request_uri|$status|$upstream_addr|$upstream_status|$request_time|$msec';
  access_log ${inDir('access.log')} course;
  client_body_temp_path ${inDir('client_body')};
  proxy_temp_path ${inDir('proxy')};
  fastcgi_temp_path ${inDir('fastcgi')};
  uwsgi_temp_path ${inDir('uwsgi')};
  scgi_temp_path ${inDir('scgi')};
${http.replace(/^/gm, '  ')}
}
`;
}

// nginx joins the upstreams of one request with ", " (and " : " across an internal
// redirect); an upstream it never reached shows as "-".
function splitList(text: string): string[] {
  return text === '-' ? [] : text.split(/\s*[,:]\s+/).filter((item) => item !== '');
}

function readIfThere(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is gone.
  }
}
