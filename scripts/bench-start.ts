// npm run bench:start: how long a worker takes from fork to listening, and its resident
// memory, with the tsx loader and with Node's own type stripping, on this Node and on
// the majors named (fetched as npm run test:node does). Heal and reload times are
// worker starts, so this is what a loader costs a learner.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { median } from './lib/checks.ts';
import { fetchNode } from './lib/node-versions.ts';
import { REPO_ROOT } from './lib/paths.ts';

const USAGE = `Usage: npm run bench:start [-- <major ...>]

Forks the lesson-1 solution as a cluster worker 7 times, one at a time, and prints
the median time from fork to listening and the median resident memory of a worker,
loaded by tsx (--import tsx) and by Node's type stripping where it is on by default
(22.18 and later). Each major named is fetched as npm run test:node fetches it.

Options:
  --help  show this help

Examples:
  npm run bench:start
  npm run bench:start -- 22 24 26`;

const FORK_TIMER = path.join(REPO_ROOT, 'scripts', 'lib', 'fork-timer.ts');

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), { help: { type: 'boolean', default: false } });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const nodes = [{ version: process.versions.node, binary: process.execPath }];
  for (const text of positionals) {
    if (!/^\d+$/.test(text)) throw new UsageError(`"${text}" is no Node.js major: name one such as 26.`, true);
    nodes.push(fetchNode(Number(text)));
  }
  console.log('Node      loader  fork to listening  resident memory');
  for (const { version, binary } of nodes) {
    for (const loader of stripsTypes(version) ? ['tsx', 'native'] : ['tsx']) {
      // The timer itself always runs through tsx; only the worker's loader changes.
      const output = execFileSync(binary, ['--import', 'tsx', FORK_TIMER, loader], { cwd: REPO_ROOT, encoding: 'utf8' });
      const { startMs, rssMb } = JSON.parse(output) as { startMs: number[]; rssMb: number[] };
      console.log(`${`v${version}`.padEnd(9)} ${loader.padEnd(7)} ${`${median(startMs).toFixed(0)} ms`.padEnd(18)} ${median(rssMb).toFixed(1)} MB`);
    }
  }
  return EXIT_PASS;
}

// Type stripping runs .ts files without a flag from Node 22.18 and 23.6.
function stripsTypes(version: string): boolean {
  const [major, minor] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
}

runCommand(USAGE, main);
