// Starts a lesson's server the way a learner would run it, and stops it so that
// nothing it started is left behind.
//
// The server runs as `node --import tsx FILE` in a process group of its own, so a
// cluster's workers can be found and ended with the primary by the group id.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT, relativeToRepo } from './paths.ts';
import { canConnect, findFreePort, waitForPort } from './ports.ts';
import { VerdictError } from './errors.ts';

export interface StartOptions {
  file: string;
  env?: Record<string, string>;
  port?: number;
  listenTimeoutMs?: number;
  // Also copy the server's output to this process's, as it arrives.
  echo?: boolean;
  // Modules node imports before the file, in the primary and in every worker it forks.
  imports?: string[];
  // Where it listens (HOST by default), and a command it runs under, such as
  // `ip netns exec NAMESPACE` for a test host of lesson 8 (scripts/lib/test-hosts.ts).
  host?: string;
  runUnder?: string[];
  // Flags for node itself, before the file, such as lesson 9's --inspect=127.0.0.1:PORT.
  nodeFlags?: string[];
  // How much of each of its output streams to keep (the last OUTPUT_LIMIT_CHARS by
  // default): lesson 9's check reads a JSON line per request.
  outputLimitChars?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export const HOST = '127.0.0.1';
// Linux routes all of 127.0.0.0/8 to loopback: a server reachable here too was bound
// to every interface, not to HOST.
const OTHER_LOOPBACK = '127.0.0.2';
const LISTEN_TIMEOUT_MS = 8_000;
// A server not yet listening whose processes have all sat idle this long is waiting on
// nothing, and one whose primary has kept a core busy this long is stuck in a loop:
// neither will listen. Booting (tsx, forking workers) does neither for that long.
const IDLE_VERDICT_MS = 2_000;
// Workers of a server not yet listening that have started and exited: they crash at boot,
// and something forks them again.
const CRASH_LOOP_EXITS = 3;
const BUSY_VERDICT_MS = 4_000;
const BUSY_SHARE = 0.9;
// At the listen timeout: a primary that has used half a core or more over its whole life
// (ps's %cpu) is spinning, however crowded the machine (a spinning primary beside a busy
// core and another test suite got 60 %), while one still booting uses a fifth or less.
const BUSY_CPU_PERCENT = 50;
const START_POLL_MS = 250;
// Linux counts CPU time in /proc in these, whatever the kernel's own tick rate.
const TICKS_PER_SECOND = 100;
const STOP_GRACE_MS = 3_000;
const KILL_WAIT_MS = 2_000;
const POLL_INTERVAL_MS = 25;
const OUTPUT_LIMIT_CHARS = 64_000;
const QUOTED_LINES = 12;

// Kept on globalThis: a check file and the command that runs it may reach this module
// through different loaders, which would give each its own copy.
const REGISTRY_KEY = Symbol.for('node-cluster-course.servers');
const registry = ((globalThis as Record<symbol, { running: Set<ServerProcess>; exitedOnTheirOwn: Set<ServerProcess> }>)[REGISTRY_KEY] ??= {
  running: new Set(),
  // Servers that exited while nothing had asked them to stop or expected it, not yet reported.
  exitedOnTheirOwn: new Set(),
});
const { running, exitedOnTheirOwn } = registry;

export class ServerProcess {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | null = null;
  // Set by a check that makes the server exit on purpose, so a later failure does not report it.
  exitExpected = false;
  private output = { stdout: '', stderr: '' };

  readonly file: string;
  readonly host: string;
  readonly port: number;
  private readonly child: ChildProcess;

  private readonly outputLimitChars: number;

  constructor(file: string, host: string, port: number, child: ChildProcess, outputLimitChars = OUTPUT_LIMIT_CHARS) {
    this.outputLimitChars = outputLimitChars;
    this.file = file;
    this.host = host;
    this.port = port;
    this.child = child;
    this.pid = child.pid!;
    child.stdout!.on('data', (chunk: Buffer) => this.append('stdout', chunk));
    child.stderr!.on('data', (chunk: Buffer) => this.append('stderr', chunk));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        if (running.has(this) && !this.exitExpected) exitedOnTheirOwn.add(this);
        resolve(this.exitInfo);
      });
    });
    running.add(this);
  }

  url(path = '/'): string {
    return `http://${this.host}:${this.port}${path}`;
  }

  get stdout(): string {
    return this.output.stdout;
  }

  get stderr(): string {
    return this.output.stderr;
  }

  private append(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    this.output[stream] = (this.output[stream] + chunk.toString()).slice(-this.outputLimitChars);
  }

  // Signals the primary alone, as `kill PID` would.
  signal(signal: NodeJS.Signals): void {
    if (this.exitInfo) return;
    process.kill(this.pid, signal);
  }

  // Signals every process of the group, as Ctrl-C in a terminal does.
  signalAll(signal: NodeJS.Signals): void {
    if (this.exitInfo) return;
    signalGroup(this.pid, signal);
  }

  // The group's processes that have not exited. An exited process whose parent died
  // stays in the table as a zombie until init reaps it, which can take seconds in a
  // container; it is left out.
  groupPids(): number[] {
    return listLiveProcesses(this.pid).map((entry) => entry.pid);
  }

  // CPU time, in ms, that the group's live processes have used so far: from /proc on
  // Linux, elsewhere from ps's TIME column (to the hundredth of a second on macOS).
  cpuMs(): number {
    return processesCpuMs(listLiveProcesses(this.pid).map((entry) => entry.pid));
  }

  workerPids(): number[] {
    return workersAmong(listLiveProcesses(this.pid), this.pid);
  }

  async waitForGroupGone(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!isGroupAlive(this.pid)) return true;
      await sleep(POLL_INTERVAL_MS);
    }
    return !isGroupAlive(this.pid);
  }

  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray | null> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = this.stdout.match(pattern);
      if (match) return match;
      await sleep(POLL_INTERVAL_MS);
    }
    return null;
  }

  // SIGTERM to the whole group, then SIGKILL if anything is still there.
  // Returns the pids that needed SIGKILL.
  async stop(graceMs = STOP_GRACE_MS): Promise<number[]> {
    running.delete(this);
    signalGroup(this.pid, 'SIGTERM');
    if (await this.waitForGroupGone(graceMs)) return [];
    const stubborn = this.groupPids();
    signalGroup(this.pid, 'SIGKILL');
    if (!(await this.waitForGroupGone(KILL_WAIT_MS))) {
      throw new Error(`processes ${this.groupPids().join(', ')} of ${relativeToRepo(this.file)} survived SIGKILL`);
    }
    return stubborn;
  }

  killSync(): void {
    running.delete(this);
    signalGroup(this.pid, 'SIGKILL');
  }
}

// Starts the server without waiting for it: for checks that watch a server fail to start.
export async function launchServer(options: StartOptions): Promise<ServerProcess> {
  const host = options.host ?? HOST;
  const port = options.port ?? (await findFreePort(HOST));
  const imports = (options.imports ?? []).flatMap((module) => ['--import', module]);
  // ip netns exec, like exec, becomes the command it runs: the pid is node's.
  const [command, ...args] = [...(options.runUnder ?? []), process.execPath, ...(options.nodeFlags ?? []), '--import', 'tsx', ...imports, options.file];
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: String(port), HOST: host, ...options.env },
  });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  if (options.echo) {
    child.stdout!.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  }
  return new ServerProcess(options.file, host, port, child, options.outputLimitChars);
}

// Starts the server and resolves once its port accepts connections; a server that
// exits, hangs or listens elsewhere is stopped and reported as a VerdictError.
export async function startServer(options: StartOptions): Promise<ServerProcess> {
  const server = await launchServer(options);
  const port = server.port;
  const timeoutMs = options.listenTimeoutMs ?? LISTEN_TIMEOUT_MS;
  const watching = new AbortController();
  let state: StartState = 'slow';
  const stuck = watchStart(server.pid, watching.signal).then((seen) => (state = seen));
  const listening = await waitForPort(server.host, port, timeoutMs, Promise.race([server.exited, stuck]));
  watching.abort();
  if (listening && server.host === HOST && process.platform === 'linux' && (await canConnect(OTHER_LOOPBACK, port))) {
    await server.stop();
    throw new VerdictError(
      `${relativeToRepo(options.file)} listens on every interface, not only on HOST=${HOST}: pass config.host to listen()`,
    );
  }
  if (listening) return server;
  const exit = server.exitInfo;
  // On a crowded machine the primary may get less than BUSY_SHARE of a core while it spins.
  if (state === 'slow' && !exit && cpuPercent(server.pid) >= BUSY_CPU_PERCENT) state = 'busy';
  await server.stop();
  throw new VerdictError(describeStartFailure(server, exit, timeoutMs, state));
}

function describeStartFailure(server: ServerProcess, exit: ExitInfo | null, timeoutMs: number, state: StartState): string {
  const file = relativeToRepo(server.file);
  if (exit) {
    return `${file} ${howItEnded(exit)} before listening on port ${server.port}.${quoteOutput('Its stderr', server.stderr)}`;
  }
  const when = {
    idle: `: it sat idle for ${IDLE_VERDICT_MS / 1000} s without listening`,
    crashing: `: ${CRASH_LOOP_EXITS} of its workers started and exited, and new ones keep coming`,
    busy: ': it kept the CPU busy the whole time',
    slow: ` within ${timeoutMs / 1000} s`,
  }[state];
  if (state === 'crashing') return `${file} did not listen on ${server.host}:${server.port}${when}: they crash at boot.${quoteOutput('The first one\'s stderr', server.stderr, 'first')}`;
  const why =
    state === 'busy'
      ? ' Does something at start loop forever or block the event loop?'
      : ' Does it listen on config.port (the PORT variable), not on a fixed port?';
  return `${file} did not listen on ${server.host}:${server.port}${when}.${why}${quoteOutput('It printed', server.stdout)}`;
}

function quoteOutput(label: string, text: string, end: 'first' | 'last' = 'last'): string {
  const all = text.trim().split('\n').filter(Boolean);
  const lines = end === 'first' ? all.slice(0, QUOTED_LINES) : all.slice(-QUOTED_LINES);
  if (lines.length === 0) return '';
  return `\n${label}:\n${lines.map((line) => `  | ${line}`).join('\n')}`;
}

type StartState = 'idle' | 'busy' | 'crashing' | 'slow';

// Watches a starting server until it shows 'crashing' (CRASH_LOOP_EXITS workers started
// and exited), or, from its CPU time in /proc, 'idle' (no process of the group used any
// for IDLE_VERDICT_MS) or 'busy' (the primary used a whole core for BUSY_VERDICT_MS).
// Resolves never if none of these shows: the listen timeout decides.
async function watchStart(pgid: number, signal: AbortSignal): Promise<StartState> {
  const never = new Promise<never>(() => {});
  const hasProc = fs.existsSync('/proc/self/stat');
  const workersSeen = new Set<number>();
  let groupTicks = -1;
  let quietSince = Date.now();
  const primary: { at: number; ticks: number }[] = [];
  while (!signal.aborted) {
    const now = Date.now();
    const live = listLiveProcesses(pgid);
    for (const pid of workersAmong(live, pgid)) workersSeen.add(pid);
    const exited = [...workersSeen].filter((pid) => !live.some((entry) => entry.pid === pid));
    if (exited.length >= CRASH_LOOP_EXITS) return 'crashing';
    if (!hasProc) {
      await sleep(START_POLL_MS);
      continue;
    }
    const ticks = live.reduce((sum, entry) => sum + cpuTicks(entry.pid), 0);
    if (ticks !== groupTicks) [groupTicks, quietSince] = [ticks, now];
    else if (now - quietSince >= IDLE_VERDICT_MS) return 'idle';
    primary.push({ at: now, ticks: cpuTicks(pgid) });
    const since = primary.find((sample) => now - sample.at <= BUSY_VERDICT_MS)!;
    const usedMs = ((primary.at(-1)!.ticks - since.ticks) / TICKS_PER_SECOND) * 1000;
    if (now - since.at >= BUSY_VERDICT_MS - START_POLL_MS && usedMs >= BUSY_SHARE * (now - since.at)) return 'busy';
    await sleep(START_POLL_MS);
  }
  return never;
}

// CPU time, in ms, that the processes `pids` have used so far: from /proc on Linux,
// elsewhere from ps's TIME column.
export function processesCpuMs(pids: number[]): number {
  if (fs.existsSync('/proc/self/stat')) return (pids.reduce((sum, pid) => sum + cpuTicks(pid), 0) / TICKS_PER_SECOND) * 1000;
  if (pids.length === 0) return 0;
  const ps = spawnSync('ps', ['-o', 'time=', '-p', pids.join(',')], { encoding: 'utf8' });
  return ps.stdout.split('\n').filter((line) => line.trim()).reduce((sum, line) => sum + parseCpuTime(line), 0);
}

// User and system CPU time of a process so far, in clock ticks (fields 14 and 15 of
// /proc/PID/stat, counted after the command name, which may contain spaces).
function cpuTicks(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

// ps's TIME, [[dd-]hh:]mm:ss[.cc], in ms.
export function parseCpuTime(text: string): number {
  const [days, clock] = text.includes('-') ? text.trim().split('-') : ['0', text.trim()];
  const seconds = clock.split(':').reduce((sum, part) => sum * 60 + Number(part), 0);
  return (Number(days) * 86_400 + seconds) * 1000;
}

// A primary's workers: its live children in its group. tsx may start an esbuild
// service beside them, which is no worker.
function workersAmong(entries: ProcessEntry[], primary: number): number[] {
  return entries.filter((entry) => entry.ppid === primary && !/esbuild/.test(entry.args)).map((entry) => entry.pid);
}

function cpuPercent(pid: number): number {
  const ps = spawnSync('ps', ['-o', '%cpu=', '-p', String(pid)], { encoding: 'utf8' });
  return Number(ps.stdout.trim()) || 0;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

// Signal 0 checks for existence, zombies included: only when it finds something is
// the process table read to tell live processes from zombies.
export function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return listLiveProcesses(pgid).length > 0;
}

interface ProcessEntry {
  pid: number;
  ppid: number;
  args: string;
}

// A zombie (stat Z) has exited and only waits to be reaped, so it is left out.
function listLiveProcesses(pgid: number): ProcessEntry[] {
  const ps = spawnSync('ps', ['-A', '-o', 'pid=,ppid=,pgid=,stat=,args='], { encoding: 'utf8' });
  const entries: ProcessEntry[] = [];
  for (const line of ps.stdout.split('\n')) {
    const match = line.trim().match(/^(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*(.*)$/);
    if (!match || Number(match[3]) !== pgid || match[4].startsWith('Z')) continue;
    entries.push({ pid: Number(match[1]), ppid: Number(match[2]), args: match[5] });
  }
  return entries;
}


// The servers that exited on their own since the last call. A check that failed
// reports them: "connection refused" alone hides that the server crashed.
export function takeUnexpectedExits(): ServerProcess[] {
  const exited = [...exitedOnTheirOwn];
  exitedOnTheirOwn.clear();
  return exited;
}

export function describeExit(server: ServerProcess): string {
  return `${relativeToRepo(server.file)} (pid ${server.pid}) ${howItEnded(server.exitInfo!)} during this check.${quoteOutput('Its stderr', server.stderr)}`;
}

export function howItEnded(exit: ExitInfo): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

// Called on Ctrl-C or an unexpected exit of the check itself.
export function killAllServersSync(): void {
  for (const server of running) server.killSync();
}
