import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Paths as a learner would type them from the repository root.
export function relativeToRepo(file: string): string {
  return path.relative(REPO_ROOT, file) || '.';
}
