import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './paths.ts';
import type { Lesson } from './lessons.ts';

// A lesson's hints are the numbered list under "## Hints" in its README, one step each.
export function readHints(lesson: Lesson): string[] {
  const readmePath = path.join(lesson.dir, 'README.md');
  if (!fs.existsSync(readmePath)) return [];
  const readme = fs.readFileSync(readmePath, 'utf8');
  const section = readme.split(/^## Hints\s*$/m)[1]?.split(/^## /m)[0] ?? '';
  return section
    .split(/^\d+\.\s+/m)
    .slice(1)
    .map((hint) => hint.trim().replace(/\s*\n\s*/g, ' '));
}

// How far the learner has read each lesson's hints, one "slug step" a line, so that
// npm run hint shows the next one. Kept out of git (.gitignore): it is not progress.
export function hintsSeenFile(root = REPO_ROOT): string {
  return path.join(root, '.hints-seen');
}

function readAllSeen(root: string): Map<string, number> {
  const file = hintsSeenFile(root);
  if (!fs.existsSync(file)) return new Map();
  const entries = fs.readFileSync(file, 'utf8').split('\n').map((line) => line.trim().split(/\s+/));
  return new Map(entries.filter(([slug, step]) => slug && Number(step) > 0).map(([slug, step]) => [slug, Number(step)]));
}

// The highest hint of `lesson` shown so far, 0 for none.
export function readHintsSeen(lesson: Lesson, root = REPO_ROOT): number {
  return readAllSeen(root).get(lesson.slug) ?? 0;
}

export function recordHintSeen(lesson: Lesson, step: number, root = REPO_ROOT): void {
  const seen = readAllSeen(root);
  seen.set(lesson.slug, Math.max(step, seen.get(lesson.slug) ?? 0));
  fs.writeFileSync(hintsSeenFile(root), [...seen].map(([slug, last]) => `${slug} ${last}\n`).join(''));
}
