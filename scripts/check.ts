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
import { SKIP_TYPECHECK_ENV, TARGET_FILE_ENV } from './lib/checks.ts';
import { CourseReporter } from './lib/reporter.ts';
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
  const flags = [values.solution ? '--solution' : '', values.only ? `--only ${quoteArgument(values.only)}` : ''].filter(Boolean);
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
  const passed = (await runChecks(lesson, values.only)) === 0;
  const isLearnersFile = !values.solution && !values.file;
  const isWholeLesson = !values.only;
  if (passed && isLearnersFile && isWholeLesson) markDone(lesson, true);
  printFooter(lesson, rerun, passed, isLearnersFile, isWholeLesson);
  return passed ? EXIT_PASS : EXIT_FAIL;
}

async function runChecks(lesson: Lesson, only: string | undefined): Promise<number> {
  const grep = only === undefined ? undefined : new RegExp(only.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i');
  const mocha = new Mocha({ reporter: CourseReporter, timeout: CHECK_TIMEOUT_MS, bail: true, grep });
  mocha.addFile(lesson.checkFile);
  await mocha.loadFilesAsync();
  return new Promise((resolve, reject) => {
    const runner = mocha.run(resolve);
    if (runner.total > 0) return;
    runner.abort();
    reject(new UsageError(`No check of lesson ${lesson.number} has "${only}" in its title.`));
  });
}

function printFooter(lesson: Lesson, rerun: string, passed: boolean, isLearnersFile: boolean, isWholeLesson: boolean): void {
  if (passed && !isWholeLesson) {
    console.log(`\nThose checks pass. The whole lesson: npm run check ${commandName(lesson)}`);
    return;
  }
  if (passed && !isLearnersFile) {
    console.log(`\nLesson ${lesson.number} passes.`);
    return;
  }
  if (passed) {
    const next = nextLessonAfter(lesson);
    console.log(`\nLesson ${lesson.number} done ✔`);
    console.log(next ? `Next: ${next.title}. Read lessons/${next.slug}/README.md, then: npm run check ${commandName(next)}` : 'That was the last lesson. Your own numbers: npm run compare -- --learner');
    return;
  }
  const hints = readHints(lesson).length;
  console.log('');
  if (hints > 0) console.log(`Stuck? npm run hint ${commandName(lesson)} gives ${hints} hints, one step at a time.`);
  console.log(`Run again: ${rerun}`);
}

function quoteArgument(text: string): string {
  return /^[\w.-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

runCommand(USAGE, main);
