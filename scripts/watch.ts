// npm run watch: runs a lesson's check, then again each time you save.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { parseCommandLine, QUIET_INTERRUPT_ENV, runCommand } from './lib/cli.ts';
import { EXIT_PASS } from './lib/errors.ts';
import { commandName, learnerFile, type Lesson } from './lib/lessons.ts';
import { REPO_ROOT, relativeToRepo } from './lib/paths.ts';
import { COURSE_NODE_FLAGS } from './lib/node-flags.ts';
import { lessonOrCurrent, nextLessonAfter, readDone } from './lib/progress.ts';

const USAGE = `Usage: npm run watch [lesson] [-- --poll]

Runs a lesson's check, then runs it again each time you save a file in the
lesson's folder. A save during a run stops that run (and its servers) and starts
a new one. Without a lesson, watches the current one. Ctrl-C stops watching.

Options:
  --poll  look for changes every half second instead of asking the file system
          to report them (for file systems where watching does not work)
  --help  show this help

Example:
  npm run watch lesson-3`;

const DEBOUNCE_MS = 200;
const POLL_INTERVAL_MS = 500;
const STOP_TIMEOUT_MS = 5_000;
const CLEAR_SCREEN = '\x1b[2J\x1b[H';

let run: ChildProcess | null = null;

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2), {
    poll: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(USAGE);
    return EXIT_PASS;
  }
  const lesson = lessonOrCurrent(positionals[0]);
  // The check runs in a process group of its own; on the way out, SIGINT lets it end its servers.
  process.on('exit', () => run && signalRun(run, 'SIGINT'));
  let timer: NodeJS.Timeout | undefined;
  const onSave = (file: string) => {
    clearTimeout(timer);
    timer = setTimeout(() => void restart(lesson, file), DEBOUNCE_MS);
  };
  watchLesson(lesson, values.poll, onSave);
  await restart(lesson);
  return new Promise<number>(() => {}); // until Ctrl-C
}

function watchLesson(lesson: Lesson, poll: boolean, onSave: (file: string) => void): void {
  if (!poll) {
    try {
      fs.watch(lesson.dir, (event, name) => name?.endsWith('.ts') && onSave(path.join(lesson.dir, name)));
      return;
    } catch {
      console.log('Watching the file system failed here; looking for changes every half second instead.');
    }
  }
  fs.watchFile(learnerFile(lesson), { interval: POLL_INTERVAL_MS }, (now, before) => {
    if (now.mtimeMs !== before.mtimeMs) onSave(learnerFile(lesson));
  });
}

// Starts a run of the check, after stopping the one still going; `changed` is the
// saved file that calls for it.
async function restart(lesson: Lesson, changed?: string): Promise<void> {
  const previous = run;
  run = null;
  if (previous) await stopRun(previous);
  process.stdout.write(process.stdout.isTTY ? CLEAR_SCREEN : '\n');
  if (changed) console.log(`${relativeToRepo(changed)} changed: ${previous ? 'restarting the check' : 'checking again'}.`);
  const child = spawn(process.execPath, [...COURSE_NODE_FLAGS, path.join(REPO_ROOT, 'scripts', 'check.ts'), commandName(lesson)], {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, [QUIET_INTERRUPT_ENV]: '1' },
  });
  run = child;
  child.once('exit', (code, signal) => {
    if (run !== child) return; // replaced by a newer run
    run = null;
    if (signal) return;
    // A pass with a target not measured leaves the lesson not done, and says so.
    if (code === 0 && readDone().has(lesson.slug)) printNext(lesson);
    console.log(`\nWatching ${relativeToRepo(lesson.dir)} for saves. Ctrl-C to stop.`);
  });
}

function printNext(lesson: Lesson): void {
  const next = nextLessonAfter(lesson);
  console.log(next ? `\nOn to ${next.title}: npm run watch ${commandName(next)}` : '\nEvery lesson is done.');
}

async function stopRun(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  signalRun(child, 'SIGINT');
  const timeout = new Promise((resolve) => setTimeout(resolve, STOP_TIMEOUT_MS).unref());
  if ((await Promise.race([exited.then(() => true), timeout.then(() => false)])) === false) signalRun(child, 'SIGKILL');
}

function signalRun(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // Already gone.
  }
}

runCommand(USAGE, main);
