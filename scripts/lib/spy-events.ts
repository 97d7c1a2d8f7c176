// What scripts/lib/signal-spy.ts writes into a cluster's stderr, read back by lesson 6's
// checks. Kept apart from the spy, whose import wraps process.kill in whatever imports it.
export const SPY_PREFIX = 'course-spy:';

export interface SpyEvent {
  what: string;
  pid: number;
  atMs: number;
}

// The spy's lines in a server's stderr, oldest first.
export function readSpy(stderr: string): SpyEvent[] {
  return [...stderr.matchAll(new RegExp(`^${SPY_PREFIX} (\\S+) pid=(\\d+) at=(\\d+)$`, 'gm'))].map((match) => ({
    what: match[1],
    pid: Number(match[2]),
    atMs: Number(match[3]),
  }));
}
