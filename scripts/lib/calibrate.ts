// HEAVY_ROUNDS is calibrated once per run, so that one /heavy costs about 15 ms on
// this machine, and handed to every server the run starts (and to child commands)
// through the environment.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_HEAVY_ROUNDS } from '../../common/config.ts';
import { computeHeavy } from '../../common/heavy.ts';
import { REPO_ROOT } from './paths.ts';

export const TARGET_HEAVY_MS = 15;
const ENV_NAME = 'COURSE_HEAVY_ROUNDS';
const WARMUP_RUNS = 5;
const TIMED_RUNS = 11;
// Enough rounds per timing that the CPU clock's resolution does not matter.
const ROUNDS_PER_TIMING = 5;

export function heavyRounds(): number {
  const known = Number(process.env[ENV_NAME]);
  if (Number.isInteger(known) && known > 0) return known;
  const rounds = chooseRounds(measureRoundMs(), roundsToAvoid());
  process.env[ENV_NAME] = String(rounds);
  return rounds;
}

// The rounds nearest TARGET_HEAVY_MS of work, stepped up past every value in `avoid`.
export function chooseRounds(roundMs: number, avoid: Set<number>): number {
  let rounds = Math.max(1, Math.round(TARGET_HEAVY_MS / roundMs));
  while (avoid.has(rounds)) rounds += 1;
  return rounds;
}

// Values a wrong answer could hard-code instead of reading HEAVY_ROUNDS, and still send
// the right /heavy result if the calibration landed on one: the contract's default, and
// every number written in a starter.
export function roundsToAvoid(root = REPO_ROOT): Set<number> {
  const avoid = new Set([DEFAULT_HEAVY_ROUNDS]);
  const starters = path.join(root, 'starters');
  for (const name of fs.readdirSync(starters, { recursive: true, encoding: 'utf8' })) {
    if (!name.endsWith('.ts')) continue;
    const text = fs.readFileSync(path.join(starters, name), 'utf8');
    for (const [number] of text.matchAll(/\b\d[\d_]*\b/g)) avoid.add(Number(number.replaceAll('_', '')));
  }
  return avoid;
}

// CPU time, not wall-clock time: on a busy machine the wall clock also counts the
// time other programs held the core, and would calibrate too little work. A core
// that shares its hardware with a busy neighbour (hyperthreads) runs slower still.
function measureRoundMs(): number {
  for (let i = 0; i < WARMUP_RUNS; i++) computeHeavy(1);
  const times: number[] = [];
  for (let i = 0; i < TIMED_RUNS; i++) {
    const started = process.cpuUsage();
    computeHeavy(ROUNDS_PER_TIMING);
    const used = process.cpuUsage(started);
    times.push((used.user + used.system) / 1000 / ROUNDS_PER_TIMING);
  }
  // The fastest timing is the one least disturbed by whatever else ran.
  return Math.min(...times);
}
