import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';
import { UsageError } from './errors.ts';

export interface Lesson {
  number: number;
  slug: string; // e.g. 02-basic-cluster
  title: string; // from the README's first heading
  dir: string;
  solutionDir: string;
  mainFile: string; // the file the learner edits: server.ts, compare.ts in lesson 4, balancer.ts in lesson 8
  checkFile: string;
  starterDir: string; // pristine copies of the starters, for npm run reset and npm test
}

const LESSON_DIR_PATTERN = /^(\d\d)-[a-z0-9-]+$/;
const MAIN_FILE_NAMES = ['server.ts', 'compare.ts', 'balancer.ts'];

export function listLessons(root = REPO_ROOT): Lesson[] {
  const lessonsDir = path.join(root, 'lessons');
  return fs
    .readdirSync(lessonsDir)
    .filter((name) => LESSON_DIR_PATTERN.test(name))
    .sort()
    .map((slug) => readLesson(root, slug));
}

function readLesson(root: string, slug: string): Lesson {
  const dir = path.join(root, 'lessons', slug);
  const mainName = MAIN_FILE_NAMES.find((name) => fs.existsSync(path.join(dir, name))) ?? MAIN_FILE_NAMES[0];
  return {
    number: Number(slug.slice(0, 2)),
    slug,
    title: readTitle(path.join(dir, 'README.md')) ?? slug,
    dir,
    solutionDir: path.join(root, 'solutions', slug),
    mainFile: mainName,
    checkFile: path.join(dir, 'check.test.ts'),
    starterDir: path.join(root, 'starters', slug),
  };
}

function readTitle(readme: string): string | undefined {
  if (!fs.existsSync(readme)) return undefined;
  const heading = fs.readFileSync(readme, 'utf8').match(/^# (.+)$/m);
  return heading?.[1];
}

// Accepts lesson-2, 2, 02, 02-basic-cluster or basic-cluster.
export function resolveLesson(name: string | undefined, root = REPO_ROOT): Lesson {
  const lessons = listLessons(root);
  const wanted = (name ?? '').trim().toLowerCase();
  const numbered = wanted.match(/^(?:lesson-?)?0*(\d+)$/);
  const found = lessons.find((lesson) =>
    numbered ? lesson.number === Number(numbered[1]) : lesson.slug === wanted || lesson.slug.slice(3) === wanted,
  );
  if (found) return found;
  const list = lessons.map((lesson) => lesson.slug).join(', ');
  const what = name === undefined ? 'No lesson given.' : `Unknown lesson "${name}".`;
  throw new UsageError(`${what} Lessons: ${list}`);
}

export function learnerFile(lesson: Lesson): string {
  return path.join(lesson.dir, lesson.mainFile);
}

export function solutionFile(lesson: Lesson): string {
  return path.join(lesson.solutionDir, lesson.mainFile);
}

export function starterFile(lesson: Lesson): string {
  return path.join(lesson.starterDir, lesson.mainFile);
}

export function commandName(lesson: Lesson): string {
  return `lesson-${lesson.number}`;
}
