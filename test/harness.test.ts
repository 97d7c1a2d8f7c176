// The harness that every check stands on. It verifies that:
// - lesson names resolve in every accepted spelling, and an unknown one lists the lessons
// - a server that ignores SIGTERM, workers included, is ended with SIGKILL and named
// - a started server's whole process group is gone after stop()
// - ps's TIME column (CPU time where there is no /proc) reads as ms, hundredths included
// - calibration never lands on a HEAVY_ROUNDS a wrong answer could hard-code
// - npm run compare says what completed and a timeout-capped percentile mean, and that
//   an overloaded serial run's errors vary; a target not measured is no inequality
import { assert } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_HEAVY_ROUNDS } from '../common/config.ts';
import { chooseRounds, roundsToAvoid, TARGET_HEAVY_MS } from '../scripts/lib/calibrate.ts';
import { explainColumns, formatTarget, judgeTargets, PUBLISHED, type Comparison } from '../scripts/lib/comparison.ts';
import type { Row } from '../solutions/04-load-test-comparison/compare.ts';
import { resolveLesson } from '../scripts/lib/lessons.ts';
import { UsageError } from '../scripts/lib/errors.ts';
import { REPO_ROOT } from '../scripts/lib/paths.ts';
import { findFreePorts } from '../scripts/lib/ports.ts';
import { listOurs, makeTestHosts, removeTestHosts, whyNoTestHosts } from '../scripts/lib/test-hosts.ts';
import { isGroupAlive, parseCpuTime, startServer } from '../scripts/lib/server-process.ts';
import { referenceFile } from '../scripts/lib/checks.ts';
import { collectPids } from '../scripts/lib/checks.ts';

const IGNORES_SIGTERM = path.join(REPO_ROOT, 'test', 'fixtures', 'harness', 'ignores-sigterm.ts');
const SHORT_GRACE_MS = 500;

describe('the harness', function () {
  describe('resolveLesson', function () {
    for (const name of ['lesson-2', '2', '02', '02-basic-cluster', 'basic-cluster', 'Lesson-2']) {
      it(`resolves "${name}" to 02-basic-cluster`, function () {
        assert(resolveLesson(name).slug === '02-basic-cluster', `"${name}" resolved to ${resolveLesson(name).slug}`);
      });
    }

    it('rejects an unknown lesson with the list of lessons', function () {
      try {
        resolveLesson('99');
        assert.fail('resolveLesson("99") returned a lesson');
      } catch (error) {
        assert(error instanceof UsageError, `threw ${String(error)}, expected a UsageError`);
        assert(error.message.startsWith('Unknown lesson "99". Lessons: 01-blocking-server, 02-basic-cluster'), error.message);
      }
    });
  });

  describe('parseCpuTime', function () {
    for (const [text, ms] of [['0:00.31', 310], ['  1:02.50', 62_500], ['00:00:07', 7_000], ['1-02:03:04', 93_784_000]] as const) {
      it(`reads "${text}" as ${ms} ms`, function () {
        assert(Math.abs(parseCpuTime(text) - ms) < 1e-6, `parseCpuTime("${text}") = ${parseCpuTime(text)}`);
      });
    }
  });

  describe('findFreePorts', function () {
    // Asked for one at a time, 300 ports held 6 to 9 repeats in each of 5 tries: lesson 8 once put
    // two of its three hosts on one port that way.
    it('gives as many different ports as asked for', async function () {
      const ports = await findFreePorts(300);
      const repeated = ports.filter((port, i) => ports.indexOf(port) !== i);
      assert(ports.length === 300 && repeated.length === 0, `${ports.length} ports, repeated: ${repeated.join(', ')}`);
    });
  });

  describe('test hosts', function () {
    // Deleting only the namespace left this machine's end of the veth listed a moment
    // later in 49 of 100 tries, and lesson 8's check once failed on it ("left behind").
    it('leaves none of its namespaces or links listed right after removeTestHosts', function () {
      if (whyNoTestHosts()) this.skip();
      for (let round = 1; round <= 10; round++) {
        removeTestHosts(makeTestHosts(3));
        const left = listOurs();
        assert(left.length === 0, `round ${round}: still listed after removeTestHosts: ${left.join(', ')}`);
      }
    });
  });

  describe('startServer and stop', function () {
    it('ends a cluster that ignores SIGTERM with SIGKILL and names its pids', async function () {
      const server = await startServer({ file: IGNORES_SIGTERM, env: { WORKERS: '2' } });
      try {
        await collectPids(server, 2, 5_000, 0);
        // tsx may also run an esbuild service in the group, which SIGTERM ends: only the
        // primary and its workers are expected to hold out.
        const cluster = [server.pid, ...server.workerPids()];
        assert(cluster.length === 3, `expected the primary and 2 workers, found pids ${cluster.join(', ')}`);
        const killed = await server.stop(SHORT_GRACE_MS);
        assert(cluster.every((pid) => killed.includes(pid)), `expected pids ${cluster.join(', ')} to need SIGKILL, got ${killed.join(', ')}`);
        assert(!isGroupAlive(server.pid), `group ${server.pid} still has processes`);
      } finally {
        server.killSync();
      }
    });

    it('leaves no process of a cluster after a graceful stop', async function () {
      const server = await startServer({ file: referenceFile('02-basic-cluster'), env: { WORKERS: '2' } });
      const killed = await server.stop();
      assert(killed.length === 0, `pids ${killed.join(', ')} needed SIGKILL`);
      assert(!isGroupAlive(server.pid), `group ${server.pid} still has processes`);
    });
  });

  describe('calibration', function () {
    it('finds the default and every number written in a starter', function () {
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'course-starters-'));
      try {
        fs.mkdirSync(path.join(root, 'starters', '09-example'), { recursive: true });
        fs.writeFileSync(path.join(root, 'starters', '09-example', 'server.ts'), 'const LIMIT_MS = 1_500;\n// TODO (3): computeHeavy(42)\n');
        const avoid = roundsToAvoid(root);
        const missing = [DEFAULT_HEAVY_ROUNDS, 1500, 3, 42].filter((value) => !avoid.has(value));
        assert(missing.length === 0, `roundsToAvoid() left out ${missing.join(', ')}; found ${[...avoid].join(', ')}`);
      } finally {
        fs.rmSync(root, { recursive: true, force: true });
      }
    });

    it('steps up past those values, whatever one round costs', function () {
      const avoid = roundsToAvoid();
      assert(avoid.has(DEFAULT_HEAVY_ROUNDS), `the default ${DEFAULT_HEAVY_ROUNDS} is not avoided`);
      for (let nearest = 1; nearest <= 100; nearest++) {
        const chosen = chooseRounds(TARGET_HEAVY_MS / nearest, avoid);
        assert(!avoid.has(chosen), `a round of ${(TARGET_HEAVY_MS / nearest).toFixed(2)} ms calibrated to ${chosen}, a value a wrong answer could hard-code`);
        const skipped = Array.from({ length: Math.max(0, chosen - nearest) }, (_, index) => nearest + index);
        assert(chosen >= nearest && skipped.every((value) => avoid.has(value)), `a round of ${(TARGET_HEAVY_MS / nearest).toFixed(2)} ms calibrated to ${chosen}, expected the first allowed value from ${nearest} up`);
      }
    });
  });

  describe('npm run compare notes', function () {
    const quiet: Row = { errors: 0, meanLatencyMs: 20, effectiveRps: 100, completed: 500, seconds: 5, p50Ms: 18, p95Ms: 26, p99Ms: 31 };
    const overloaded: Row = { errors: 154, meanLatencyMs: 1394, effectiveRps: 49, completed: 500, seconds: 7, p50Ms: 1466, p95Ms: 2001, p99Ms: 2001 };
    const comparing = (serial: Row, cluster: Row): Comparison => ({
      finishedAt: '2025-01-01T00:00:00.000Z',
      machine: { cores: 2, cpu: 'test CPU', node: process.version },
      heavyRounds: 14,
      load: { concurrency: 10, rps: 100, requests: 500, timeoutMs: 2000 },
      servers: { serial: 'serial.ts', cluster: 'cluster.ts', workers: 2 },
      serial,
      cluster,
      published: PUBLISHED,
      targets: [],
    });

    it('explains completed, the percentiles at the timeout, and why an overloaded serial run varies', function () {
      const notes = explainColumns(comparing(overloaded, quiet));
      assert(notes.includes('completed: requests that ended, answered or given up on'), notes);
      assert(notes.includes('serial p95, serial p99: at the 2000 ms timeout, so requests given up on'), `the capped percentiles are not named:\n${notes}`);
      assert(notes.includes('Its errors vary from run to run; the cluster, with room to spare, had none.'), `no word on the serial run's spread:\n${notes}`);
    });

    it('says nothing of a timeout or an overload a run did not have', function () {
      const notes = explainColumns(comparing(quiet, quiet));
      assert(notes.split('\n').length === 1 && notes.startsWith('completed:'), `expected only the completed line:\n${notes}`);
    });

    it('prints a missed speed target on a busy machine as not measured, not as a ✘', function () {
      const slow = { ...quiet, effectiveRps: quiet.effectiveRps * 1.2 };
      const busy = formatTarget(judgeTargets(quiet, slow, 2, 'other programs were using 1.3 of this machine\'s 2 cores')[1]);
      assert(busy.endsWith('–') && busy.includes('not measured: other programs') && !busy.includes('≥'), busy);
      const quietMiss = formatTarget(judgeTargets(quiet, slow, 2)[1]);
      assert(quietMiss.endsWith('✘') && quietMiss.includes('≥ 1.6 ×'), quietMiss);
    });

    it('prints the speed target on 1 core as not measured, not as an inequality', function () {
      const line = formatTarget(judgeTargets(overloaded, overloaded, 1)[1]);
      assert(line.endsWith('–') && line.includes('not measured: this machine has 1 core') && !line.includes('≥'), line);
    });
  });
});
