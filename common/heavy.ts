// The CPU-bound task behind every lesson's /heavy route. It is deterministic, so a
// check can compute the same result and verify the server did the work.

// One round is about a millisecond of CPU on a current laptop; the checks calibrate
// HEAVY_ROUNDS so that one /heavy costs about 15 ms on the machine they run on.
const ITERATIONS_PER_ROUND = 1_000_000;
const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

export function computeHeavy(rounds: number): string {
  let hash = FNV_OFFSET_BASIS;
  const iterations = rounds * ITERATIONS_PER_ROUND;
  for (let i = 0; i < iterations; i++) {
    hash = Math.imul(hash ^ i, FNV_PRIME);
  }
  return (hash >>> 0).toString(16).padStart(8, '0');
}
