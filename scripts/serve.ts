// npm run serve: runs a lesson's server on port 3000 for loading it by hand.
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_FAIL, EXIT_PASS, UsageError, VerdictError } from './lib/errors.ts';
import { learnerFile, resolveLesson, solutionFile } from './lib/lessons.ts';
import { relativeToRepo } from './lib/paths.ts';
import { canConnect } from './lib/ports.ts';
import { heavyRounds, TARGET_HEAVY_MS } from './lib/calibrate.ts';
import { HOST, howItEnded, startServer } from './lib/server-process.ts';

const USAGE = `Usage: npm run serve <lesson> [-- --solution] [-- --port N]

Runs a lesson's server on ${HOST}:3000, with HEAVY_ROUNDS calibrated as the checks
calibrate it, until you press Ctrl-C. Load it from another terminal with
  npx loadtest -c 10 --rps 100 -n 500 http://localhost:3000/heavy

Options:
  --solution   serve the reference solution instead of your file
  --port N     listen on port N instead of 3000
  --workers N  set WORKERS (default: one per core)
  --help       show this help

Examples:
  npm run serve lesson-1
  npm run serve lesson-2 -- --solution --workers 4`;

const DEFAULT_PORT = 3000;
const READY_WAIT_MS = 3_000;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    solution: { type: 'boolean', default: false },
    port: { type: 'string', default: String(DEFAULT_PORT) },
    workers: { type: 'string' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lesson = resolveLesson(positionals[0]);
  if (lesson.mainFile !== 'server.ts') {
    throw new VerdictError(`${lesson.title} has no server of its own: it measures the others. Run npm run compare`);
  }
  const port = parsePositive('--port', values.port);
  const env: Record<string, string> = { HEAVY_ROUNDS: String(heavyRounds()) };
  if (values.workers !== undefined) env.WORKERS = String(parsePositive('--workers', values.workers));
  const file = values.solution ? solutionFile(lesson) : learnerFile(lesson);
  if (await canConnect(HOST, port)) {
    throw new VerdictError(`Port ${port} is busy: stop what is using it, or serve on another with -- --port ${port + 1}`);
  }
  console.log(`Serving ${relativeToRepo(file)} with HEAVY_ROUNDS=${env.HEAVY_ROUNDS} (about ${TARGET_HEAVY_MS} ms per /heavy)`);
  const server = await startServer({ file, port, env, echo: true });
  // A cluster's port accepts before every worker listens; its ready line says when all do.
  await server.waitForOutput(/ready/i, READY_WAIT_MS);
  console.log(`Listening on http://${HOST}:${port}. Press Ctrl-C to stop. In another terminal:`);
  console.log(`  npx loadtest -c 10 --rps 100 -n 500 http://localhost:${port}/heavy`);
  const exit = await server.exited;
  await server.stop();
  console.log(`\nThe server ${howItEnded(exit)}.`);
  return exit.code === 0 ? EXIT_PASS : EXIT_FAIL;
}

function parsePositive(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} must be a whole number ≥ 1, got "${text}"`, true);
  return value;
}

runCommand(USAGE, main);
