// npm run progress: every lesson with its state, and the command to run next.
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_PASS } from './lib/errors.ts';
import { commandName, listLessons } from './lib/lessons.ts';
import { currentLesson, readDone } from './lib/progress.ts';

const USAGE = `Usage: npm run progress

Shows every lesson as done (✔), current (▶) or not yet, and what to run next.
A lesson is done once npm run check passed on your file; progress.txt keeps the
record, and you may commit it.`;

const BAR_WIDTH = 20;

async function main(): Promise<number> {
  const { values } = parseCommandLine(process.argv.slice(2), { help: { type: 'boolean', default: false } });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lessons = listLessons();
  const done = readDone();
  const current = currentLesson();
  const doneCount = lessons.filter((lesson) => done.has(lesson.slug)).length;
  const filled = Math.round((doneCount / lessons.length) * BAR_WIDTH);
  console.log(`Progress ${'█'.repeat(filled)}${'░'.repeat(BAR_WIDTH - filled)} ${doneCount}/${lessons.length}\n`);
  for (const lesson of lessons) {
    const mark = done.has(lesson.slug) ? '✔' : lesson.slug === current?.slug ? '▶' : ' ';
    console.log(`  ${mark} ${lesson.title}`);
  }
  console.log(current ? `\nNext: read lessons/${current.slug}/README.md, then: npm run check ${commandName(current)}` : '\nEvery lesson is done. Your own numbers: npm run compare -- --learner');
  return EXIT_PASS;
}

runCommand(USAGE, main);
