// npm run hint: a lesson's hints, one step at a time.
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS, UsageError } from './lib/errors.ts';
import { commandName } from './lib/lessons.ts';
import { readHints, readHintsSeen, recordHintSeen } from './lib/hints.ts';
import { lessonOrCurrent } from './lib/progress.ts';

const USAGE = `Usage: npm run hint [lesson] [step] [-- --all]

Shows a lesson's hints one step at a time: each run shows the next hint you have
not seen yet, or the step you name. Without a lesson, the current one (npm run
progress).

Options:
  --all   show every hint at once
  --help  show this help

Examples:
  npm run hint lesson-2
  npm run hint lesson-2 2`;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    all: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lesson = lessonOrCurrent(positionals[0]);
  const hints = readHints(lesson);
  const unseen = Math.min(readHintsSeen(lesson) + 1, hints.length);
  const step = Number(positionals[1] ?? unseen);
  if (!Number.isInteger(step) || step < 1 || step > hints.length) {
    throw new UsageError(`${lesson.title} has hints 1 to ${hints.length}; there is no hint "${positionals[1]}".`);
  }
  const shown = values.all ? hints.map((_, index) => index + 1) : [step];
  console.log(lesson.title);
  for (const number of shown) console.log(`\nHint ${number} of ${hints.length}: ${hints[number - 1]}`);
  const last = shown.at(-1)!;
  recordHintSeen(lesson, last);
  const name = commandName(lesson);
  if (last < hints.length) console.log(`\nNext hint: npm run hint ${name} ${last + 1}`);
  else if (!values.all) console.log(`\nThat is the last hint. Every hint at once: npm run hint ${name} -- --all`);
  return EXIT_PASS;
}

runCommand(USAGE, main);
