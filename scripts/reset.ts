// npm run reset: puts a lesson's starter back, after asking.
import fs from 'node:fs';
import readline from 'node:readline/promises';
import { parseCommandLine, runCommand } from './lib/cli.ts';
import { EXIT_FAIL, EXIT_PASS } from './lib/errors.ts';
import { learnerFile, starterFile } from './lib/lessons.ts';
import { relativeToRepo } from './lib/paths.ts';
import { lessonOrCurrent, markDone } from './lib/progress.ts';

const USAGE = `Usage: npm run reset <lesson> [-- --yes]

Restores a lesson's file to its starter (a copy of starters/NN-slug/) and clears
the lesson's done mark. Your changes to the file are lost, so it asks first.

Options:
  --yes   do not ask
  --help  show this help

Example:
  npm run reset lesson-2`;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    yes: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lesson = lessonOrCurrent(positionals[0]);
  const file = learnerFile(lesson);
  if (!values.yes && !(await confirm(`Reset ${relativeToRepo(file)} to the starter? Your changes will be lost. [y/N] `))) {
    console.log('Nothing changed.');
    return EXIT_FAIL;
  }
  fs.copyFileSync(starterFile(lesson), file);
  markDone(lesson, false);
  console.log(`Restored ${relativeToRepo(file)} to the starter.`);
  return EXIT_PASS;
}

// No answer (an empty line, or input that ends) is no.
async function confirm(question: string): Promise<boolean> {
  const prompt = readline.createInterface({ input: process.stdin, output: process.stdout });
  const ended = new Promise<string>((resolve) => prompt.once('close', () => resolve('')));
  const answer = await Promise.race([prompt.question(question), ended]);
  prompt.close();
  return /^y(es)?$/i.test(answer.trim());
}

runCommand(USAGE, main);
