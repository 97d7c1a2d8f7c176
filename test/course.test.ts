// The course checks itself. For every lesson:
// - the reference solution passes the lesson's checks
// - the starter fails them
// - neither run prints a DeprecationWarning or ExperimentalWarning: on the Node versions
//   the course supports, its own processes print none a learner could take for theirs
// - every known-wrong answer in test/fixtures/NN-slug/ fails with the message that
//   names its mistake (the fixture's "Verdict:" line). A fixture is a whole file, or a
//   diff against the solution (see fixture-diffs.ts). A fixture whose mistake only a
//   late check can see names that check ("Check:"), and only that one runs: the
//   solution's run has shown the others pass, and it saves minutes of npm test.
// Lesson 8 runs nginx, and lesson 10 redis-server and nginx: where they are missing the
// lesson is skipped, unless CI=true, where that fails, as does a CI machine that cannot make network namespaces. Its solution also passes with hosts on ports of 127.0.0.1, as on macOS.
// Every broken server in test/fixtures/broken/ (syntax and type errors, servers that
// never listen, exit, spin or listen elsewhere) gets its verdict within 15 s.
// No server is left running afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { assert } from 'chai';
import { heavyRounds } from '../scripts/lib/calibrate.ts';
import { SKIP_TYPECHECK_ENV } from '../scripts/lib/checks.ts';
import { commandName, learnerFile, listLessons, starterFile } from '../scripts/lib/lessons.ts';
import { REPO_ROOT } from '../scripts/lib/paths.ts';
import { typecheck } from '../scripts/lib/typecheck.ts';
import { APPLIED_DIR, appliedPath, applyFixtureDiff } from './fixture-diffs.ts';
import { leftoverProcesses, runScript, type CommandRun } from './helpers.ts';
import { findNginx, INSTALL_NGINX } from '../scripts/lib/nginx.ts';
import { findRedis, INSTALL_REDIS } from '../scripts/lib/redis-server.ts';
import { leftoverTestHosts, LOOPBACK_HOSTS_ENV, whyNoTestHosts } from '../scripts/lib/test-hosts.ts';

const FIXTURES_DIR = path.join(REPO_ROOT, 'test', 'fixtures');
const BROKEN_VERDICT_SECONDS = 15;
// npm test's tsc --noEmit has typechecked every solution and fixture file already, and
// before() below the fixtures made from diffs; a starter, as a learner's file, and a
// broken server are typechecked by the check.
const TYPECHECKED = { [SKIP_TYPECHECK_ENV]: '1' };

interface Fixture {
  // What the check runs: the fixture's file, or the one its diff makes.
  file: string;
  diff?: string;
  mistake: string;
  verdict: string;
  check: string;
}

function readFixtures(folder: string): Fixture[] {
  const dir = path.join(FIXTURES_DIR, folder);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.ts') || name.endsWith('.diff'))
    .map((name) => {
      const source = path.join(dir, name);
      const text = fs.readFileSync(source, 'utf8');
      const field = (label: string) => text.match(new RegExp(`^// ${label}: (.+)$`, 'm'))?.[1] ?? '';
      const diff = name.endsWith('.diff') ? source : undefined;
      return { file: diff ? appliedPath(diff) : source, diff, mistake: field('Mistake'), verdict: field('Verdict'), check: field('Check') };
    });
}

// How Node prints a warning, such as one from a dependency of the course's own processes.
const NODE_WARNING = /DeprecationWarning|ExperimentalWarning/;

function explain(run: CommandRun): string {
  return `exit code ${run.code} after ${run.seconds.toFixed(1)} s; output:\n${run.output}`;
}

describe('the course', function () {
  before(async function () {
    // Calibrated once for the whole run; every check below inherits it.
    heavyRounds();
    const diffs = listLessons().flatMap((lesson) => readFixtures(lesson.slug).flatMap((fixture) => fixture.diff ?? []));
    const typeErrors = await typecheck(...diffs.map(applyFixtureDiff));
    assert(typeErrors.length === 0, `fixtures made from diffs do not typecheck:\n${typeErrors.join('\n')}`);
  });

  after(function () {
    fs.rmSync(APPLIED_DIR, { recursive: true, force: true });
    const left = leftoverProcesses();
    assert(left.length === 0, `servers left running:\n${left.join('\n')}`);
    const namespaces = leftoverTestHosts();
    assert(namespaces.length === 0, `lesson 8's test hosts left: ${namespaces.join(', ')}`);
  });

  for (const lesson of listLessons()) {
    const name = commandName(lesson);

    describe(lesson.slug, function () {
      const needsNginx = lesson.slug === '08-several-hosts';
      const needsRedis = lesson.slug === '10-shared-state';
      before(function () {
        if (needsRedis) {
          const missing = !findRedis() ? INSTALL_REDIS : !findNginx() ? INSTALL_NGINX : undefined;
          if (missing && process.env.CI) assert.fail(missing);
          if (missing) this.skip();
        }
        if (!needsNginx) return;
        // CI installs nginx and iproute2 through the README's own line, and runs as root:
        // there the namespaced hosts must run, not the fallback on 127.0.0.1.
        const noNamespaces = whyNoTestHosts();
        if (process.env.CI && noNamespaces) assert.fail(`lesson 8's hosts cannot be network namespaces here: ${noNamespaces}`);
        if (findNginx()) return;
        if (process.env.CI) assert.fail(INSTALL_NGINX);
        this.skip();
      });

      it('passes the solution, printing no Node warning', async function () {
        const run = await runScript('scripts/check.ts', [name, '--solution'], { env: TYPECHECKED });
        assert(run.code === 0, `npm run check ${name} -- --solution: ${explain(run)}`);
        assert(!NODE_WARNING.test(run.output), `npm run check ${name} -- --solution printed a Node warning on Node ${process.version}: ${explain(run)}`);
      });

      if (needsNginx) {
        it('passes the solution with hosts on ports of 127.0.0.1, as where namespaces cannot be made', async function () {
          const run = await runScript('scripts/check.ts', [name, '--solution'], { env: { ...TYPECHECKED, [LOOPBACK_HOSTS_ENV]: '1' } });
          assert(run.code === 0, `${LOOPBACK_HOSTS_ENV}=1 npm run check ${name} -- --solution: ${explain(run)}`);
          assert(run.output.includes('hosts are ports of 127.0.0.1'), `the check did not say its hosts are ports of 127.0.0.1: ${explain(run)}`);
        });
      }

      // The pristine starter, so npm test stays green once a learner edits lessons/.
      it('fails the starter, printing no Node warning', async function () {
        assert(fs.existsSync(starterFile(lesson)), `${starterFile(lesson)} is missing`);
        const run = await runScript('scripts/check.ts', [name, '--file', starterFile(lesson)]);
        assert(run.code === 1, `npm run check ${name}: ${explain(run)}`);
        assert(run.output.includes(`Run again: npm run check ${name}`), `no "Run again" line: ${explain(run)}`);
        assert(!NODE_WARNING.test(run.output), `npm run check ${name} printed a Node warning on Node ${process.version}: ${explain(run)}`);
      });

      // Learners edit lessons/, so only CI holds them to the pristine copies.
      (process.env.CI ? it : it.skip)('ships the pristine starter in lessons/ (CI only)', function () {
        const shipped = fs.readFileSync(learnerFile(lesson), 'utf8');
        assert(shipped === fs.readFileSync(starterFile(lesson), 'utf8'), `${learnerFile(lesson)} differs from ${starterFile(lesson)}`);
      });

      for (const fixture of readFixtures(lesson.slug)) {
        it(`rejects ${path.basename(fixture.diff ?? fixture.file)}: ${fixture.mistake}`, async function () {
          assert(fixture.verdict, `${fixture.diff ?? fixture.file} has no "// Verdict:" line`);
          const only = fixture.check ? ['--only', fixture.check] : [];
          const run = await runScript('scripts/check.ts', [name, '--file', fixture.file, ...only], { env: TYPECHECKED });
          assert(run.code === 1, `expected exit code 1: ${explain(run)}`);
          assert(run.output.includes(fixture.verdict), `expected the verdict "${fixture.verdict}": ${explain(run)}`);
        });
      }
    });
  }

  // One at a time: side by side, their startups compete for the CPU and each takes longer.
  describe('a broken server', function () {
    for (const fixture of readFixtures('broken')) {
      it(`gets its verdict within ${BROKEN_VERDICT_SECONDS} s: ${fixture.mistake}`, async function () {
        const run = await runScript('scripts/check.ts', ['lesson-1', '--file', fixture.file]);
        assert(run.code === 1, `expected exit code 1: ${explain(run)}`);
        assert(run.output.includes(fixture.verdict), `expected the verdict "${fixture.verdict}": ${explain(run)}`);
        assert(!/\n\s+at .+:\d+:\d+\)?\n/.test(run.output.replace(/^\s+\|.*$/gm, '')), `a stack trace of the course was printed: ${explain(run)}`);
        assert(run.seconds <= BROKEN_VERDICT_SECONDS, `took ${run.seconds.toFixed(1)} s, expected ≤ ${BROKEN_VERDICT_SECONDS} s`);
      });
    }
  });
});
