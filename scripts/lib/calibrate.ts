// HEAVY_ROUNDS is calibrated once per run, so that one /heavy costs about 15 ms on
// this machine, and handed to every server the run starts (and to child commands)
// through the environment.
import { computeHeavy } from '../../common/heavy.ts';

export const TARGET_HEAVY_MS = 15;
const ENV_NAME = 'COURSE_HEAVY_ROUNDS';
const WARMUP_RUNS = 5;
const TIMED_RUNS = 21;

export function heavyRounds(): number {
  const known = Number(process.env[ENV_NAME]);
  if (Number.isInteger(known) && known > 0) return known;
  const rounds = Math.max(1, Math.round(TARGET_HEAVY_MS / measureRoundMs()));
  process.env[ENV_NAME] = String(rounds);
  return rounds;
}

function measureRoundMs(): number {
  for (let i = 0; i < WARMUP_RUNS; i++) computeHeavy(1);
  const times: number[] = [];
  for (let i = 0; i < TIMED_RUNS; i++) {
    const started = performance.now();
    computeHeavy(1);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
