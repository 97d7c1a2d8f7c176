// The memory of a server's whole process group. On Linux this is PSS, proportional set
// size: each page's share among the processes that map it. Resident set sizes (RSS)
// would count the node binary and every other shared page once per process, and make a
// cluster look bigger than it is. Elsewhere, RSS from ps is what there is.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { ServerProcess } from './server-process.ts';

const KIB = 1024;
const MIB = 1024 * KIB;

export interface GroupMemory {
  bytes: number;
  processes: number;
  // 'PSS' or 'RSS': what `bytes` sums.
  measure: string;
}

export function measureGroupMemory(server: ServerProcess): GroupMemory {
  const pids = server.groupPids();
  const pss = pids.map(readPssBytes);
  if (pss.every((bytes) => bytes !== undefined)) return { bytes: sum(pss as number[]), processes: pids.length, measure: 'PSS' };
  return { bytes: sum(pids.map(readRssBytes)), processes: pids.length, measure: 'RSS' };
}

export function formatMemory(memory: GroupMemory): string {
  const processes = memory.processes === 1 ? '1 process' : `${memory.processes} processes`;
  return `${Math.round(memory.bytes / MIB)} MB ${memory.measure} (${processes})`;
}

function readPssBytes(pid: number): number | undefined {
  try {
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kib = rollup.match(/^Pss:\s+(\d+) kB$/m)?.[1];
    return kib === undefined ? undefined : Number(kib) * KIB;
  } catch {
    return undefined;
  }
}

function readRssBytes(pid: number): number {
  const ps = spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' });
  return (Number(ps.stdout.trim()) || 0) * KIB;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
