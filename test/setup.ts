// Root hooks for npm test: an interrupted run (Ctrl-C, or CI's timeout) still ends
// every server it started, since servers run in process groups of their own.
import { killAllServersSync } from '../scripts/lib/server-process.ts';

const EXIT_INTERRUPTED = 130;

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllServersSync();
    process.exit(EXIT_INTERRUPTED);
  });
}
process.on('exit', killAllServersSync);

export const mochaHooks = {};
