// A known-wrong fixture that is a small change to its lesson's solution is kept as a
// unified diff against it (`diff -u solutions/NN-slug/server.ts mistake.ts`), so the
// mistake reads at a glance and cannot drift from the solution. Here it is applied
// exactly, with no fuzz: a diff the solution no longer matches fails, naming the line.
// The result goes to .fixtures/NN-slug/NAME.ts, at the solution's depth, so its imports
// of ../../common are the solution's own.
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, relativeToRepo } from '../scripts/lib/paths.ts';

export const APPLIED_DIR = path.join(REPO_ROOT, '.fixtures');

export function appliedPath(diffFile: string): string {
  return path.join(APPLIED_DIR, path.basename(path.dirname(diffFile)), `${path.basename(diffFile, '.diff')}.ts`);
}

export function applyFixtureDiff(diffFile: string): string {
  const diff = fs.readFileSync(diffFile, 'utf8');
  const base = diff.match(/^--- (\S+)$/m)?.[1];
  if (!base) throw new Error(`${relativeToRepo(diffFile)} has no "--- solutions/NN-slug/server.ts" line`);
  const source = fs.readFileSync(path.join(REPO_ROOT, base), 'utf8').split('\n');
  const output: string[] = [];
  let next = 0;
  for (const hunk of diff.split(/^(?=@@ )/m).slice(1)) {
    const [header, ...lines] = hunk.replace(/\n$/, '').split('\n');
    const start = Number(header.match(/^@@ -(\d+)/)![1]) - 1;
    output.push(...source.slice(next, start));
    next = start;
    for (const line of lines) {
      const [mark, text] = [line[0], line.slice(1)];
      if (mark === '+') {
        output.push(text);
        continue;
      }
      if (source[next] !== text) {
        throw new Error(`${relativeToRepo(diffFile)} no longer applies to ${base}: its line ${next + 1} is "${source[next]}", the diff expects "${text}"`);
      }
      if (mark === ' ') output.push(text);
      next += 1;
    }
  }
  output.push(...source.slice(next));
  const file = appliedPath(diffFile);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, output.join('\n'));
  return file;
}
