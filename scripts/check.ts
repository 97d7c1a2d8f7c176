// npm run check: runs a lesson's checks against the learner's file or the solution.
import fs from 'node:fs';
import path from 'node:path';
import Mocha from 'mocha';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_FAIL, EXIT_PASS, UsageError, VerdictError } from './lib/errors.ts';
import { commandName, learnerFile, resolveLesson, solutionFile, type Lesson } from './lib/lessons.ts';
import { relativeToRepo } from './lib/paths.ts';
import { typecheck } from './lib/typecheck.ts';
import { heavyRounds, TARGET_HEAVY_MS } from './lib/calibrate.ts';
import { coreCount, SKIP_TYPECHECK_ENV, TARGET_FILE_ENV } from './lib/checks.ts';
import { checksNotMeasured, CourseReporter } from './lib/reporter.ts';
import { readHints } from './lib/hints.ts';
import { currentLesson, markDone, nextLessonAfter } from './lib/progress.ts';

const USAGE = `Usage: npm run check [lesson] [-- options]

Runs a lesson's checks against your file (lessons/NN-slug/server.ts) and prints
what they measured. Without a lesson, checks the first one not done yet. A lesson
is named lesson-2, 2, 02 or 02-basic-cluster. A pass on your file marks the lesson
done in progress.txt.

Options:
  --solution   check the reference solution instead of your file
  --file PATH  check another file against the lesson's checks
  --only TEXT  run only the checks whose title contains TEXT (any case); a
               partial run never marks a lesson done
  --help       show this help

Examples:
  npm run check lesson-1
  npm run check lesson-2 -- --solution
  npm run check lesson-3 -- --only sigterm

Exits 0 when every check passes, 1 when one fails, 2 for a command it does not understand.`;

// A check that takes longer than this has hung; every wait inside is bounded well below it.
const CHECK_TIMEOUT_MS = 60_000;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    solution: { type: 'boolean', default: false },
    file: { type: 'string' },
    only: { type: 'string' },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lesson = positionals[0] === undefined ? currentLesson() : resolveLesson(positionals[0]);
  if (!lesson) {
    console.log('Every lesson is done. See your own numbers with: npm run compare -- --learner');
    return EXIT_PASS;
  }
  const file = values.file ? path.resolve(values.file) : values.solution ? solutionFile(lesson) : learnerFile(lesson);
  if (!fs.existsSync(file)) throw new VerdictError(`${relativeToRepo(file)} does not exist. npm run reset ${commandName(lesson)} puts the starter back.`);
  const flags = [values.solution ? '--solution' : '', values.file ? `--file ${quoteArgument(relativeToRepo(file))}` : '', values.only ? `--only ${quoteArgument(values.only)}` : ''].filter(Boolean);
  const rerun = `npm run check ${commandName(lesson)}${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`;
  console.log(`${lesson.title}\nChecking ${relativeToRepo(file)}${values.only ? `, only the checks whose title contains "${values.only}"` : ''}`);

  // npm test sets this for the solutions and fixtures its tsc --noEmit has typechecked.
  const typeErrors = process.env[SKIP_TYPECHECK_ENV] ? [] : await typecheck(file);
  if (typeErrors.length > 0) {
    console.log(`\n✘ ${relativeToRepo(file)} does not typecheck:`);
    for (const error of typeErrors) console.log(`    ${error}`);
    console.log(`\nRun again: ${rerun}`);
    return EXIT_FAIL;
  }
  console.log(`HEAVY_ROUNDS=${heavyRounds()}: one /heavy costs about ${TARGET_HEAVY_MS} ms of CPU on this machine`);

  process.env[TARGET_FILE_ENV] = file;
  const run = await runChecks(lesson, values.only);
  const passed = run.failures.length === 0;
  const notMeasured = checksNotMeasured();
  const isLearnersFile = !values.solution && !values.file;
  const isWholeLesson = !values.only;
  if (passed && notMeasured.length === 0 && isLearnersFile && isWholeLesson) markDone(lesson, true);
  if (!passed) printFailureFooter(lesson, rerun, run.failures);
  else if (notMeasured.length > 0) printNotMeasuredFooter(lesson, notMeasured, values.solution, isLearnersFile && isWholeLesson);
  else printPassFooter(lesson, isLearnersFile, isWholeLesson);
  return passed ? EXIT_PASS : EXIT_FAIL;
}

// Runs the lesson's checks; resolves with the failing checks' messages.
async function runChecks(lesson: Lesson, only: string | undefined): Promise<{ failures: string[] }> {
  const grep = only === undefined ? undefined : new RegExp(only.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
  const mocha = new Mocha({ reporter: CourseReporter, timeout: CHECK_TIMEOUT_MS, bail: true, grep });
  mocha.addFile(lesson.checkFile);
  await mocha.loadFilesAsync();
  const failures: string[] = [];
  return new Promise((resolve, reject) => {
    const runner = mocha.run(() => resolve({ failures }));
    runner.on('fail', (_test, error: unknown) => failures.push(error instanceof Error ? error.message : String(error)));
    if (runner.total > 0) return;
    runner.abort();
    reject(new UsageError(`No check of lesson ${lesson.number} has "${only}" in its title.`));
  });
}

function printPassFooter(lesson: Lesson, isLearnersFile: boolean, isWholeLesson: boolean): void {
  if (!isWholeLesson) {
    console.log(`\nThose checks pass. The whole lesson: npm run check ${commandName(lesson)}`);
    return;
  }
  if (!isLearnersFile) {
    console.log(`\nLesson ${lesson.number} passes.`);
    return;
  }
  const next = nextLessonAfter(lesson);
  console.log(`\nLesson ${lesson.number} done ✔`);
  console.log(next ? `Next: ${next.title}. Read lessons/${next.slug}/README.md, then: npm run check ${commandName(next)}` : 'That was the last lesson. Your own numbers: npm run compare -- --learner');
}

// A check whose target was not measured passed nothing: say so, and how to measure it.
function printNotMeasuredFooter(lesson: Lesson, titles: string[], solution: boolean, couldMarkDone: boolean): void {
  const name = commandName(lesson);
  const checks = titles.length === 1 ? '1 check' : `${titles.length} checks`;
  const what = `${checks} could not measure ${titles.length === 1 ? 'its target' : 'their targets'} here (the reason is under each)`;
  console.log(couldMarkDone ? `\nThis run does not mark lesson ${lesson.number} done: ${what}.` : `\nNo check failed, but ${what}.`);
  if (coreCount() < 2) {
    const next = nextLessonAfter(lesson);
    console.log(`${titles.length === 1 ? 'That target needs' : 'Those targets need'} a machine with 2 or more cores${couldMarkDone ? `: run npm run check ${name} on one to complete the lesson` : ''}.`);
    if (couldMarkDone && next) console.log(`Meanwhile, go on with ${next.title}: npm run check ${commandName(next)}`);
    return;
  }
  const flags = solution ? '--solution ' : '';
  console.log(`Close the programs that keep the CPU busy, then measure ${titles.length === 1 ? 'it' : 'each'} on its own:`);
  for (const title of titles) console.log(`  npm run check ${name} -- ${flags}--only ${quoteArgument(title)}`);
  if (couldMarkDone) console.log(`and once ${titles.length === 1 ? 'it passes' : 'they pass'}, the whole lesson to mark it done: npm run check ${name}`);
}

function printFailureFooter(lesson: Lesson, rerun: string, failures: string[]): void {
  const hints = readHints(lesson).length;
  // Lessons that number their tasks name the one a verdict points to: "(task 4)".
  const tasks = [...new Set(failures.flatMap((message) => [...message.matchAll(/\(task (\d+)\)/g)].map((match) => Number(match[1]))))];
  const hinted = tasks.filter((task) => task >= 1 && task <= hints);
  console.log('');
  if (hinted.length > 0) {
    const commands = hinted.map((task) => `npm run hint ${commandName(lesson)} ${task}`).join(', ');
    const one = hinted.length === 1;
    const named = one ? `task ${hinted[0]}` : `tasks ${hinted.slice(0, -1).join(', ')} and ${hinted.at(-1)}`;
    console.log(`Stuck on ${named}? ${one ? 'Its hint' : 'Their hints'}: ${commands}`);
  } else if (hints > 0) {
    console.log(`Stuck? npm run hint ${commandName(lesson)} gives ${hints} hints, one step at a time.`);
  }
  console.log(`Run again: ${rerun}`);
}

function quoteArgument(text: string): string {
  return /^[\w.-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

runCommand(USAGE, main);
