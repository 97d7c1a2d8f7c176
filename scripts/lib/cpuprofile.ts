// Reads a .cpuprofile (the inspector's Profiler.Profile:
// https://chromedevtools.github.io/devtools-protocol/v8/Profiler/#type-Profile) into self
// time per function, as DevTools' Bottom-Up view shows it: each sample is the function on
// top of the stack, and the time until the next sample is its own.
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}
export interface SelfTime {
  functionName: string;
  file: string;
  ms: number;
}

// Not JavaScript of the worker's: time spent waiting, in V8's own code or collecting garbage.
export const NOT_CODE = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

export function isProfile(value: unknown): value is CpuProfile {
  const profile = value as CpuProfile;
  return Array.isArray(profile?.nodes) && Array.isArray(profile.samples) && Array.isArray(profile.timeDeltas) && typeof profile.startTime === 'number';
}

export function selfTimes(profile: CpuProfile): SelfTime[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, SelfTime>();
  let at = profile.startTime;
  const sampledAt = profile.timeDeltas.map((delta) => (at += delta));
  for (let i = 0; i < profile.samples.length; i++) {
    const until = sampledAt[i + 1] ?? profile.endTime;
    const { functionName, url } = byId.get(profile.samples[i])!.callFrame;
    const name = functionName || '(anonymous)';
    const file = url.startsWith('file:') ? fileURLToPath(url) : url;
    const key = `${name} ${file}`;
    const entry = totals.get(key) ?? { functionName: name, file, ms: 0 };
    entry.ms += Math.max(0, until - sampledAt[i]) / 1000;
    totals.set(key, entry);
  }
  return [...totals.values()].sort((a, b) => b.ms - a.ms);
}
