// npm run solution: what the reference answer does differently from your file.
import { spawnSync } from 'node:child_process';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, VerdictError } from './lib/errors.ts';
import { commandName, learnerFile, solutionFile } from './lib/lessons.ts';
import { REPO_ROOT, relativeToRepo } from './lib/paths.ts';
import { lessonOrCurrent, readDone } from './lib/progress.ts';

const USAGE = `Usage: npm run solution <lesson> [-- --force]

Shows the difference between your file and the reference solution, once the
lesson is done (its check passed on your file). Lines starting with + are the
solution's.

Options:
  --force  show it before the lesson is done
  --help   show this help

Example:
  npm run solution lesson-2`;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    force: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lesson = lessonOrCurrent(positionals[0]);
  const name = commandName(lesson);
  if (!values.force && !readDone().has(lesson.slug)) {
    throw new VerdictError(`Lesson ${lesson.number} is not done yet: pass npm run check ${name} first, or see it anyway with npm run solution ${name} -- --force`);
  }
  const [mine, theirs] = [learnerFile(lesson), solutionFile(lesson)].map(relativeToRepo);
  console.log(`Your ${mine} against the solution ${theirs}:\n`);
  const diff = spawnSync('git', ['diff', '--no-index', `--color=${process.stdout.isTTY ? 'always' : 'never'}`, mine, theirs], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  if (diff.error) throw new VerdictError(`git is needed to show the difference; read ${theirs} instead`);
  console.log(diff.stdout.trim() || 'No difference: your file is the solution, line for line.');
  return EXIT_PASS;
}

runCommand(USAGE, main);
