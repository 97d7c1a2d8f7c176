// The learner's commands, spawned as a learner runs them, in a scratch copy of the
// course. They verify that:
// - every command explains itself with --help, and README.md quotes that text
// - .ci/run runs exactly lesson 8's install line, the README's quickstart, then the Node
//   versions matrix its maintainers' section names, on every supported major but the
//   oldest (CI's own)
// - an unknown lesson exits 2 with the list of lessons; a bad flag exits 2 with usage
// - a pass marks the lesson done; progress, hint and check then move on to the next
// - a target the check could not measure prints as not measured, never as ✔ or as an
//   inequality, is counted in the summary, and keeps the lesson from being marked done
// - hint shows the next hint each run; a failing check names the hint for each task
//   its verdict points to
// - reset asks first, then restores the starter byte for byte and clears the mark
// - solution waits until the lesson is done, unless --force
// - watch re-runs on a save, restarts a run cut short by a save (one line naming the
//   file), and leaves nothing behind after Ctrl-C, which prints one line; so does
//   check, and serve
// - serve refuses a busy port
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { assert } from 'chai';
import { TEST_CORES_ENV } from '../scripts/lib/checks.ts';
import { REPO_ROOT } from '../scripts/lib/paths.ts';
import { supportedMajors } from '../scripts/lib/node-versions.ts';
import { findFreePort } from '../scripts/lib/ports.ts';
import { leftoverProcesses, makeScratchCopy, runScript, spawnScript, waitFor } from './helpers.ts';

const COMMANDS = ['check', 'watch', 'hint', 'progress', 'reset', 'solution', 'serve', 'compare', 'test:node', 'test:repeat'];
const LESSON_1 = path.join('lessons', '01-blocking-server', 'server.ts');
const STARTER_1 = path.join('starters', '01-blocking-server', 'server.ts');
const SOLUTION_1 = path.join('solutions', '01-blocking-server', 'server.ts');
const LESSON_2 = path.join('lessons', '02-basic-cluster', 'server.ts');
const STARTER_3 = path.join('starters', '03-restart-and-isolation', 'server.ts');
const SOLUTION_2 = path.join('solutions', '02-basic-cluster', 'server.ts');
const STARTER_7 = path.join('starters', '07-worker-threads', 'server.ts');
const RUN_TIMEOUT_MS = 60_000;
const CLEANUP_WAIT_MS = 3_000;

describe('the commands', function () {
  let scratch: string;
  const file = (relative: string) => path.join(scratch, relative);
  const run = (command: string, args: string[] = [], input?: string) => runScript(`scripts/${command}.ts`, args, { cwd: scratch, input });

  before(function () {
    scratch = makeScratchCopy();
  });

  after(function () {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  afterEach(async function () {
    const deadline = Date.now() + CLEANUP_WAIT_MS;
    while (leftoverProcesses(scratch).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    const left = leftoverProcesses(scratch);
    assert(left.length === 0, `processes left running:\n${left.join('\n')}`);
  });

  describe('help and mistakes', function () {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    for (const command of COMMANDS) {
      it(`${command} --help prints the usage README.md quotes`, async function () {
        const result = await run(command.replace(':', '-'), ['--help']);
        assert(result.code === 0, `exit code ${result.code}: ${result.output}`);
        assert(result.output.startsWith(`Usage: npm run ${command}`), `usage starts: ${result.output.slice(0, 80)}`);
        assert(readme.includes(result.output.trim()), `README.md does not quote npm run ${command} -- --help word for word:\n${result.output}`);
      });
    }

    for (const command of ['check', 'watch', 'hint', 'reset', 'solution', 'serve']) {
      it(`${command} rejects an unknown lesson with the list`, async function () {
        const result = await run(command, ['99']);
        assert(result.code === 2, `exit code ${result.code}, expected 2: ${result.output}`);
        assert(result.output.trim().startsWith('Unknown lesson "99". Lessons: 01-blocking-server'), result.output);
      });
    }

    it("runs in CI exactly lesson 8's install line and the README's quickstart commands, then the matrix on every other supported Node", function () {
      const codeAfter = (heading: string) => readme.split(heading)[1].match(/```\n([\s\S]*?)```/)![1].trim().split('\n');
      const readmeCommands = [...codeAfter('Lesson 8 (several hosts'), ...codeAfter('## Quickstart'), ...codeAfter('CI runs `.ci/run`')];
      const ci = fs.readFileSync(path.join(REPO_ROOT, '.ci', 'run'), 'utf8').split('\n').filter((line) => line && !/^(#|set |cd )/.test(line));
      assert(JSON.stringify(ci) === JSON.stringify(readmeCommands), `.ci/run runs ${JSON.stringify(ci)}, the README says ${JSON.stringify(readmeCommands)}`);
      const matrix = ci.join('\n').match(/^npm run test:node -- ([\d ]+)$/m)?.[1].split(' ').map(Number) ?? [];
      const others = supportedMajors().slice(1);
      assert(JSON.stringify(matrix) === JSON.stringify(others), `.ci/run tests Node ${matrix.join(', ') || 'no other major'}; package.json's engines names ${others.join(', ')} beside the oldest`);
    });

    it('test:node rejects an argument that is no Node major, with exit code 2 and the usage', async function () {
      const result = await run('test-node', ['lts']);
      assert(result.code === 2, `exit code ${result.code}, expected 2: ${result.output}`);
      assert(result.output.startsWith('"lts" is no Node.js major') && result.output.includes('Usage: npm run test:node'), result.output);
    });

    it('test:repeat runs only the tests --grep names, and says so when it names none', async function () {
      const some = await run('test-repeat', ['1', '--grep', 'findFreePorts gives']);
      assert(some.code === 0 && some.output.includes('run 1/1: pass, 1 passing, 0 failing'), `exit code ${some.code}: ${some.output}`);
      const none = await run('test-repeat', ['1', '--grep', 'no test has this title']);
      assert(none.code === 2, `exit code ${none.code}, expected 2: ${none.output}`);
      assert(none.output.includes(`No test's title contains "no test has this title".`), none.output);
    });

    it('rejects an unknown flag with exit code 2 and the usage', async function () {
      const result = await run('check', ['lesson-1', '--solutoin']);
      assert(result.code === 2, `exit code ${result.code}, expected 2: ${result.output}`);
      assert(result.output.includes("Unknown option '--solutoin'") && result.output.includes('Usage: npm run check'), result.output);
    });
  });

  describe('progress through a lesson', function () {
    it('shows lesson 1 as current before anything passes', async function () {
      const result = await run('progress');
      assert(result.output.includes('▶ Lesson 1: A blocking server'), result.output);
      assert(result.output.includes('Next: read lessons/01-blocking-server/README.md, then: npm run check lesson-1'), result.output);
    });

    it('keeps the solution hidden until the lesson is done', async function () {
      const result = await run('solution', ['lesson-1']);
      assert(result.code === 1, `exit code ${result.code}, expected 1: ${result.output}`);
      assert(result.output.includes('npm run solution lesson-1 -- --force'), result.output);
    });

    it('runs only the checks --only names, and never marks a lesson done from them', async function () {
      fs.copyFileSync(file(SOLUTION_1), file(LESSON_1));
      const some = await runScript('scripts/check.ts', ['lesson-1', '--only', '404'], { cwd: scratch, timeoutMs: RUN_TIMEOUT_MS });
      assert(some.code === 0, `exit code ${some.code}: ${some.output}`);
      assert(some.output.includes('✔ answers 404') && !some.output.includes('/light wait'), `not only the 404 check ran: ${some.output}`);
      assert(some.output.includes('Those checks pass. The whole lesson: npm run check lesson-1'), some.output);
      const progress = fs.existsSync(file('progress.txt')) ? fs.readFileSync(file('progress.txt'), 'utf8') : '';
      assert(!progress.includes('01-blocking-server'), `a partial run marked lesson 1 done:\n${progress}`);
      const none = await run('check', ['lesson-1', '--only', 'no such check']);
      assert(none.code === 2 && none.output.includes('No check of lesson 1 has "no such check" in its title.'), `exit code ${none.code}: ${none.output}`);
    });

    it('marks lesson 1 done when its check passes on the learner file', async function () {
      fs.copyFileSync(file(SOLUTION_1), file(LESSON_1));
      const result = await runScript('scripts/check.ts', [], { cwd: scratch, timeoutMs: RUN_TIMEOUT_MS });
      assert(result.code === 0, `npm run check: exit code ${result.code}: ${result.output}`);
      assert(result.output.includes('Lesson 1 done ✔'), result.output);
      assert(fs.readFileSync(file('progress.txt'), 'utf8').includes('01-blocking-server'), 'progress.txt does not list 01-blocking-server');
    });

    it('moves progress and hints on to lesson 2', async function () {
      const progress = await run('progress');
      assert(progress.output.includes('✔ Lesson 1') && progress.output.includes('▶ Lesson 2'), progress.output);
      const hint = await run('hint');
      assert(hint.output.includes('Lesson 2: A basic cluster') && hint.output.includes('Hint 1 of'), hint.output);
    });

    it('prints a target it could not measure as not measured, and does not mark the lesson done', async function () {
      fs.copyFileSync(file(SOLUTION_2), file(LESSON_2));
      // As on a 1-core machine, where lesson 2's speed targets cannot be measured.
      const result = await runScript('scripts/check.ts', ['lesson-2'], { cwd: scratch, timeoutMs: RUN_TIMEOUT_MS, env: { [TEST_CORES_ENV]: '1' } });
      assert(result.code === 0, `exit code ${result.code}, expected 0 (no check failed): ${result.output}`);
      const title = 'serves /heavy at ≥ 1.4 × the serial throughput';
      assert(result.output.includes(`  – ${title} (not measured)\n`), `the skipped check is not marked – (not measured): ${result.output}`);
      assert(!result.output.includes(`✔ ${title}`), `the skipped check printed as a pass: ${result.output}`);
      assert(/\n {6}throughput \d+ req\/s, serial \d+ req\/s \(.*\n {6}not measured: this machine has 1 core/.test(result.output), `no figures and reason under the skipped check: ${result.output}`);
      assert(!/req\/s ≥/.test(result.output), `a skipped target printed as an inequality: ${result.output}`);
      assert(/\n\d+ passed, 2 not measured, 0 failed\n/.test(result.output), `the summary does not count the skipped checks: ${result.output}`);
      assert(result.output.includes('This run does not mark lesson 2 done: 2 checks could not measure their targets here'), result.output);
      assert(result.output.includes('Meanwhile, go on with Lesson 3'), `no next lesson to go on with: ${result.output}`);
      const progress = fs.readFileSync(file('progress.txt'), 'utf8');
      assert(!progress.includes('02-basic-cluster'), `a run with skipped targets marked lesson 2 done:\n${progress}`);
    });

    it('shows the solution once the lesson is done', async function () {
      const result = await run('solution', ['lesson-1']);
      assert(result.code === 0, `exit code ${result.code}: ${result.output}`);
      assert(result.output.includes('No difference'), result.output);
    });

    it('leaves the file alone when reset is not confirmed', async function () {
      const result = await run('reset', ['lesson-1'], 'n\n');
      assert(result.code === 1, `exit code ${result.code}, expected 1: ${result.output}`);
      assert(fs.readFileSync(file(LESSON_1), 'utf8') === fs.readFileSync(file(SOLUTION_1), 'utf8'), 'the file changed');
    });

    it('restores the starter byte for byte and clears the done mark after y', async function () {
      const result = await run('reset', ['lesson-1'], 'y\n');
      assert(result.code === 0, `exit code ${result.code}: ${result.output}`);
      assert(fs.readFileSync(file(LESSON_1)).equals(fs.readFileSync(file(STARTER_1))), 'lessons/01 differs from its starter');
      const progress = await run('progress');
      assert(progress.output.includes('▶ Lesson 1'), progress.output);
    });
  });

  describe('hints', function () {
    it('shows the next hint on each run, after the one named last', async function () {
      const first = await run('hint', ['lesson-3']);
      assert(first.output.includes('Hint 1 of') && first.output.includes('Next hint: npm run hint lesson-3 2'), first.output);
      const second = await run('hint', ['lesson-3']);
      assert(second.output.includes('Hint 2 of') && !second.output.includes('Hint 1 of'), `the second run did not move on to hint 2: ${second.output}`);
      const named = await run('hint', ['lesson-3', '4']);
      assert(named.output.includes('Hint 4 of'), named.output);
      const next = await run('hint', ['lesson-3']);
      assert(next.output.includes('Hint 5 of') && next.output.includes('Next hint: npm run hint lesson-3 6'), `after hint 4, expected hint 5: ${next.output}`);
    });

    it('names the hint of the task a failing check points to', async function () {
      const result = await runScript('scripts/check.ts', ['lesson-3', '--file', STARTER_3], { cwd: scratch, timeoutMs: RUN_TIMEOUT_MS });
      assert(result.code === 1, `exit code ${result.code}, expected 1: ${result.output}`);
      const task = result.output.match(/\(task (\d+)\)/)?.[1];
      assert(task, `the starter's verdict names no "(task N)": ${result.output}`);
      assert(result.output.includes(`Stuck on task ${task}? Its hint: npm run hint lesson-3 ${task}`), `the footer does not name hint ${task}: ${result.output}`);
    });

    it('names each hint when the verdict points to several tasks', async function () {
      const result = await runScript('scripts/check.ts', ['lesson-7', '--file', STARTER_7], { cwd: scratch, timeoutMs: RUN_TIMEOUT_MS });
      assert(result.code === 1, `exit code ${result.code}, expected 1: ${result.output}`);
      const footer = 'Stuck on tasks 1, 3 and 4? Their hints: npm run hint lesson-7 1, npm run hint lesson-7 3, npm run hint lesson-7 4';
      assert(result.output.includes(footer), `expected the footer "${footer}": ${result.output}`);
    });
  });

  describe('watch', function () {
    it('re-runs on a save, restarts a run a save cuts short, and leaves nothing after Ctrl-C', async function () {
      const watch = spawnScript('scripts/watch.ts', ['lesson-1'], scratch);
      try {
        await waitFor(watch.output, /Checking lessons\/01-blocking-server\/server.ts/, RUN_TIMEOUT_MS);
        fs.appendFileSync(file(LESSON_1), '\n// saved during the first run\n');
        await waitFor(watch.output, /Watching lessons\/01-blocking-server for saves/, RUN_TIMEOUT_MS);
        const runs = watch.output().match(/Checking lessons/g)?.length ?? 0;
        assert(runs === 2, `expected 2 runs (the first cut short by the save), saw ${runs}:\n${watch.output()}`);
        const restarted = watch.output().match(/^.*changed.*$/gm) ?? [];
        assert(restarted.join() === 'lessons/01-blocking-server/server.ts changed: restarting the check.', `expected one line saying the save restarted the check, saw ${JSON.stringify(restarted)}:\n${watch.output()}`);
        assert(!watch.output().includes('Stopped by'), `a save printed a stop by a signal nobody sent:\n${watch.output()}`);
        fs.appendFileSync(file(LESSON_1), '// saved again\n');
        await waitFor(() => watch.output().split('Watching lessons')[1] ?? '', /Checking lessons/, RUN_TIMEOUT_MS);
      } finally {
        watch.kill('SIGINT');
        await new Promise((resolve) => watch.once('close', resolve));
      }
      const stops = watch.output().match(/Stopped by SIGINT/g)?.length ?? 0;
      assert(stops === 1, `Ctrl-C printed ${stops} "Stopped by SIGINT" lines, expected 1:\n${watch.output()}`);
    });
  });

  describe('stopping in the middle', function () {
    it('check ends its servers when interrupted', async function () {
      const check = spawnScript('scripts/check.ts', ['lesson-2', '--solution'], scratch);
      await waitFor(check.output, /with WORKERS=/, RUN_TIMEOUT_MS);
      await new Promise((resolve) => setTimeout(resolve, 500));
      check.kill('SIGINT');
      const code = await new Promise((resolve) => check.once('close', resolve));
      assert(code === 130, `exit code ${code}, expected 130: ${check.output()}`);
    });

    it('serve refuses a busy port', async function () {
      const blocker = net.createServer().listen(0, '127.0.0.1');
      await new Promise((resolve) => blocker.once('listening', resolve));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        const result = await run('serve', ['lesson-1', '--solution', '--port', String(port)]);
        assert(result.code === 1, `exit code ${result.code}, expected 1: ${result.output}`);
        assert(result.output.includes(`Port ${port} is busy`), result.output);
      } finally {
        blocker.close();
      }
    });

    it('serve answers until Ctrl-C, then ends its server', async function () {
      const port = await findFreePort();
      const serve = spawnScript('scripts/serve.ts', ['lesson-2', '--solution', '--port', String(port)], scratch);
      await waitFor(serve.output, /Press Ctrl-C to stop/, RUN_TIMEOUT_MS);
      serve.kill('SIGINT');
      await new Promise((resolve) => serve.once('close', resolve));
    });
  });
});
