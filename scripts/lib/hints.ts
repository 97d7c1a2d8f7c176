import fs from 'node:fs';
import path from 'node:path';
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
