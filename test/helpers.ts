// Runs the course's commands as a learner would, in a child process.
import { spawn, spawnSync } from 'node:child_process';
import { REPO_ROOT } from '../scripts/lib/paths.ts';

export interface CommandRun {
  code: number | null;
  output: string; // stdout and stderr, interleaved as they arrived
  seconds: number;
}

const COMMAND_TIMEOUT_MS = 100_000;

export function runScript(script: string, args: string[], options: { timeoutMs?: number; cwd?: string; input?: string } = {}): Promise<CommandRun> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGINT'), options.timeoutMs ?? COMMAND_TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, seconds: (performance.now() - started) / 1000 });
    });
  });
}

// Processes started from this repository's lessons, solutions or fixtures that are still running.
export function leftoverServers(): string[] {
  const ps = spawnSync('ps', ['-A', '-o', 'pid=,args='], { encoding: 'utf8' });
  const serverPaths = ['lessons/', 'solutions/', 'test/fixtures/'].map((dir) => `${REPO_ROOT}${dir}`);
  return ps.stdout
    .split('\n')
    .filter((line) => line.includes('--import tsx') && serverPaths.some((dir) => line.includes(dir)));
}
