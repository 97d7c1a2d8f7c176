// npm run test:repeat: runs the course's test suite several times and reports every
// failure with the figures its check printed, to find the checks that flake.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_FAIL, EXIT_PASS, UsageError } from './lib/errors.ts';
import { REPO_ROOT } from './lib/paths.ts';

const USAGE = `Usage: npm run test:repeat -- [runs] [--grep TEXT] [--busy-core]

Runs the test suite (mocha, after one typecheck) the given number of times, 10 by
default, and reports each failure with the output of the check that failed. Each
run's whole output is kept in .cache/test-repeat/run-N.log.

Options:
  --grep TEXT  run only the tests whose title contains TEXT (mocha's --grep), such
               as one lesson's: 05-graceful-reload
  --busy-core  keep one core busy with another process during the runs, as a
               noisy neighbour would
  --help       show this help

Examples:
  npm run test:repeat -- 3
  npm run test:repeat -- 10 --grep "05-graceful-reload passes the solution"`;

const DEFAULT_RUNS = 10;
const FAILURE_LINES = 40;
const LOG_DIR = path.join(REPO_ROOT, '.cache', 'test-repeat');

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    'busy-core': { type: 'boolean', default: false },
    grep: { type: 'string' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const runs = Number(positionals[0] ?? DEFAULT_RUNS);
  if (!Number.isInteger(runs) || runs < 1) throw new UsageError(`runs must be a whole number ≥ 1, got "${positionals[0]}"`, true);
  if ((await run('npx', ['tsc', '--noEmit'])).code !== 0) {
    console.log('The typecheck fails: npm run typecheck');
    return EXIT_FAIL;
  }
  mkdirSync(LOG_DIR, { recursive: true });
  const burner = values['busy-core'] ? startBurner() : undefined;
  const failures: string[] = [];
  try {
    for (let index = 1; index <= runs; index++) {
      const started = performance.now();
      const result = await run('npx', ['mocha', ...(values.grep ? ['--grep', values.grep] : [])]);
      const minutes = ((performance.now() - started) / 60_000).toFixed(1);
      // A stopped repeat keeps the runs it finished, with every check's figures.
      writeFileSync(path.join(LOG_DIR, `run-${index}.log`), result.output);
      const passing = result.output.match(/(\d+) passing/)?.[1] ?? '0';
      const failing = result.output.match(/(\d+) failing/)?.[1] ?? '0';
      if (values.grep && passing === '0' && failing === '0') throw new UsageError(`No test's title contains "${values.grep}".`);
      console.log(`run ${index}/${runs}: ${result.code === 0 ? 'pass' : 'FAIL'}, ${passing} passing, ${failing} failing, ${minutes} min`);
      if (result.code === 0) continue;
      // At once, so a long repeat shows what failed while it goes on.
      failures.push(`run ${index}:\n${failureReport(result.output)}`);
      console.log(failures.at(-1));
    }
  } finally {
    if (burner) stopBurner(burner);
  }
  console.log(`\n${runs - failures.length} of ${runs} runs passed${values['busy-core'] ? ' with one core kept busy' : ''}.`);
  if (failures.length > 0) console.log(`\nThe failures again:\n\n${failures.join('\n\n')}`);
  return failures.length === 0 ? EXIT_PASS : EXIT_FAIL;
}

// Mocha's numbered failure list, each entry cut to its first FAILURE_LINES lines.
function failureReport(output: string): string {
  // The list comes after mocha's "N failing" line; the spec listing above it numbers
  // the failed tests the same way.
  const summary = output.search(/^\s*\d+ failing/m);
  const rest = summary === -1 ? output : output.slice(summary);
  const list = rest.slice(rest.search(/^\s+1\) /m));
  return list
    .split(/^(?=\s+\d+\) )/m)
    .map((entry) => entry.split('\n').slice(0, FAILURE_LINES).join('\n'))
    .join('');
}

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('close', (code) => resolve({ code, output }));
  });
}

// A process that spins on one core until killed, in a group of its own.
function startBurner(): ChildProcess {
  const burner = spawn(process.execPath, ['-e', 'for (;;) {}'], { detached: true, stdio: 'ignore' });
  process.on('exit', () => stopBurner(burner));
  return burner;
}

function stopBurner(burner: ChildProcess): void {
  try {
    process.kill(-burner.pid!, 'SIGKILL');
  } catch {
    // Already ended.
  }
}

runCommand(USAGE, main);
