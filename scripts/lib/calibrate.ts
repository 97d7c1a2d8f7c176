// HEAVY_ROUNDS is calibrated once per run, so that one /heavy costs about 15 ms on
// this machine, and handed to every server the run starts (and to child commands)
// through the environment.
import { computeHeavy } from '../../common/heavy.ts';

export const TARGET_HEAVY_MS = 15;
const ENV_NAME = 'COURSE_HEAVY_ROUNDS';
const WARMUP_RUNS = 5;
const TIMED_RUNS = 11;
// Enough rounds per timing that the CPU clock's resolution does not matter.
const ROUNDS_PER_TIMING = 5;

export function heavyRounds(): number {
  const known = Number(process.env[ENV_NAME]);
  if (Number.isInteger(known) && known > 0) return known;
  const rounds = Math.max(1, Math.round(TARGET_HEAVY_MS / measureRoundMs()));
  process.env[ENV_NAME] = String(rounds);
  return rounds;
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
