// What a check prints under its title: measured values against their targets.
// The course's reporter prints the lines a test recorded when the test ends.
import { VerdictError } from './errors.ts';

// Kept on globalThis: the check file and the reporter may reach this module through
// different loaders (ESM and tsx's CommonJS hook), which would give each its own copy.
const RECORDED_KEY = Symbol.for('node-cluster-course.recorded-lines');
const SKIPPED_KEY = Symbol.for('node-cluster-course.skipped-targets');
const recorded: string[] = ((globalThis as Record<symbol, string[]>)[RECORDED_KEY] ??= []);
const skipped: string[] = ((globalThis as Record<symbol, string[]>)[SKIPPED_KEY] ??= []);

export function note(line: string): void {
  recorded.push(line);
}

// Records `line` with ✔ or ✘; a missed target fails the test with `mistake`,
// which names what is probably wrong.
export function target(line: string, ok: boolean, mistake: string): void {
  recorded.push(`${line} ${ok ? '✔' : '✘'}`);
  if (!ok) throw new VerdictError(mistake);
}

// A target this run could not judge: `figures` are what was measured, stated without
// the target's inequality (which may not hold), and `reason` says why it does not count.
// The test then shows as not measured, never as a pass.
export function skipTarget(figures: string, reason: string): void {
  recorded.push(figures, `not measured: ${reason}`);
  skipped.push(reason);
}

export function takeRecordedLines(): string[] {
  return recorded.splice(0, recorded.length);
}

// The reasons of the targets skipped since the last call.
export function takeSkippedTargets(): string[] {
  return skipped.splice(0, skipped.length);
}

export function formatRate(rps: number): string {
  return `${Math.round(rps)} req/s`;
}

export function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}
