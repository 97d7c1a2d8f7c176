// Runs the course's commands as a learner would, in a child process.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { COURSE_NODE_FLAGS } from '../scripts/lib/node-flags.ts';
import { REPO_ROOT } from '../scripts/lib/paths.ts';

export interface CommandRun {
  code: number | null;
  output: string; // stdout and stderr, interleaved as they arrived
  seconds: number;
}

const COMMAND_TIMEOUT_MS = 100_000;

export function runScript(script: string, args: string[], options: { timeoutMs?: number; cwd?: string; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CommandRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawnScript(script, args, options.cwd, options.env);
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGINT'), options.timeoutMs ?? COMMAND_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: child.output(), seconds: (performance.now() - started) / 1000 });
    });
  });
}

type ScriptProcess = ChildProcessByStdio<Writable, Readable, Readable> & { output: () => string };

export function spawnScript(script: string, args: string[], cwd = REPO_ROOT, env?: NodeJS.ProcessEnv): ScriptProcess {
  const child = spawn(process.execPath, [...COURSE_NODE_FLAGS, path.join(cwd, script), ...args], { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  return Object.assign(child, { output: () => output });
}

// Resolves once `read()` matches `pattern`, or rejects after `timeoutMs`.
export async function waitFor(read: () => string, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(read())) {
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms in:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// Processes of the course still running from `root`: servers from lessons, solutions,
// starters or fixtures (made from diffs in .fixtures/), and the course's own commands.
export function leftoverProcesses(root = REPO_ROOT): string[] {
  const ps = spawnSync('ps', ['-A', '-o', 'pid=,args='], { encoding: 'utf8' });
  const paths = ['lessons/', 'solutions/', 'starters/', 'test/fixtures/', '.fixtures/', 'scripts/'].map((dir) => path.join(root, dir));
  // Lesson 8's nginx and lesson 10's Redis run from folders of their own (scripts/lib/nginx.ts,
  // scripts/lib/redis-server.ts, which puts its folder in the process's title).
  const folders = ['course-nginx-', 'course-redis-'].map((prefix) => path.join(os.tmpdir(), prefix));
  return ps.stdout.split('\n').filter((line) => paths.some((dir) => line.includes(dir)) || folders.some((folder) => line.includes(folder)));
}

// A copy of the course to run commands in, so they can change files and progress freely.
export function makeScratchCopy(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'course-scratch-'));
  // test/ and .mocharc.json too: test:repeat typechecks and runs the suite in the copy.
  for (const entry of ['common', 'lessons', 'solutions', 'starters', 'scripts', 'test', '.mocharc.json', 'package.json', 'tsconfig.json', 'README.md']) {
    fs.cpSync(path.join(REPO_ROOT, entry), path.join(root, entry), { recursive: true });
  }
  fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'));
  return root;
}
