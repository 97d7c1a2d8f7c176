// The learner's progress: progress.txt at the repository root, one line per lesson
// whose checks passed on the learner's own file. Plain text, so it can be committed.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';
import { listLessons, resolveLesson, type Lesson } from './lessons.ts';
import { UsageError } from './errors.ts';

const HEADER = '# Lessons whose checks passed on your file (npm run progress). npm run reset <lesson> removes one.';

export function progressFile(root = REPO_ROOT): string {
  return path.join(root, 'progress.txt');
}

export function readDone(root = REPO_ROOT): Set<string> {
  const file = progressFile(root);
  if (!fs.existsSync(file)) return new Set();
  const lines = fs.readFileSync(file, 'utf8').split('\n').map((line) => line.trim());
  return new Set(lines.filter((line) => line && !line.startsWith('#')));
}

export function markDone(lesson: Lesson, done: boolean, root = REPO_ROOT): void {
  const slugs = readDone(root);
  if (done) slugs.add(lesson.slug);
  else slugs.delete(lesson.slug);
  fs.writeFileSync(progressFile(root), [HEADER, ...[...slugs].sort()].join('\n') + '\n');
}

// The first lesson not done, or undefined once every lesson is.
export function currentLesson(root = REPO_ROOT): Lesson | undefined {
  const done = readDone(root);
  return listLessons(root).find((lesson) => !done.has(lesson.slug));
}

export function nextLessonAfter(lesson: Lesson, root = REPO_ROOT): Lesson | undefined {
  const done = readDone(root);
  return listLessons(root).find((other) => other.number > lesson.number && !done.has(other.slug));
}

// The lesson a command was given, or the current one when it was given none.
export function lessonOrCurrent(name: string | undefined, root = REPO_ROOT): Lesson {
  if (name !== undefined) return resolveLesson(name, root);
  const lesson = currentLesson(root);
  if (!lesson) throw new UsageError('Every lesson is done; name the lesson you mean, e.g. lesson-2.');
  return lesson;
}
