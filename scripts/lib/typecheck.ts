// Typechecks a learner file (and what it imports) with the course's tsconfig, so a
// type error is reported as file:line before any server starts. npm test passes several.
// TypeScript 7's compiler is a native binary with no stable JavaScript API, so this runs
// its tsc on a throwaway tsconfig that extends the course's and lists only these files.
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './paths.ts';

const TSC = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
// The course's declaration of loadtest's promise API replaces the out-of-date bundled one.
const DECLARATIONS = [path.join(REPO_ROOT, 'scripts', 'types', 'loadtest.d.ts')];

export async function typecheck(...files: string[]): Promise<string[]> {
  // Inside the repo (in the gitignored .cache/), so @types/node and @types/mocha resolve.
  const dir = path.join(REPO_ROOT, '.cache');
  mkdirSync(dir, { recursive: true });
  const config = path.join(dir, `typecheck-${process.pid}.json`);
  writeFileSync(config, JSON.stringify({ extends: '../tsconfig.json', include: [], files: [...files.map((file) => path.resolve(file)), ...DECLARATIONS] }));
  try {
    await promisify(execFile)(TSC, ['-p', config, '--pretty', 'false'], { cwd: REPO_ROOT });
    return [];
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    const lines = `${stdout ?? ''}${stderr ?? ''}`.split('\n').filter((line) => line.trim() !== '');
    if (lines.length === 0) throw error;
    return lines.map(formatDiagnostic);
  } finally {
    rmSync(config, { force: true });
  }
}

// tsc prints "path(line,col): error TS2322: message"; the course prints "path:line:col: message".
function formatDiagnostic(line: string): string {
  const match = /^(.+?)\((\d+),(\d+)\): error TS\d+: (.*)$/.exec(line);
  return match ? `${match[1]}:${match[2]}:${match[3]}: ${match[4]}` : line;
}
