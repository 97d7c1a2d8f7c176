// Mocha reporter for learners: each check as ✔ or ✘ with the figures it measured, or
// as – when a target it has could not be measured here, a failure as its one-line
// message (no stack trace), and nothing else.
import Mocha from 'mocha';
import { takeRecordedLines, takeSkippedTargets } from './report.ts';
import { describeExit, takeUnexpectedExits } from './server-process.ts';

const { EVENT_SUITE_BEGIN, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_RUN_END } = Mocha.Runner.constants;

// The titles of the last run's checks that passed with a target not measured.
const notMeasured: string[] = [];

export function checksNotMeasured(): string[] {
  return [...notMeasured];
}

export class CourseReporter extends Mocha.reporters.Base {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    let passed = 0;
    let failed = 0;
    // Checks that cannot run here (lesson 8's network namespaces), each saying why.
    let skipped = 0;
    notMeasured.length = 0;
    runner.on(EVENT_SUITE_BEGIN, (suite) => {
      if (suite.title) console.log(`\n${suite.title}`);
    });
    runner.on(EVENT_TEST_PASS, (test) => {
      if (takeSkippedTargets().length === 0) {
        passed += 1;
        printResult('✔', test.title);
        return;
      }
      notMeasured.push(test.title);
      printResult('–', `${test.title} (not measured)`);
    });
    runner.on(EVENT_TEST_FAIL, (test, error) => {
      failed += 1;
      takeSkippedTargets();
      printResult('✘', describeRunnable(test));
      console.log(indent(messageOf(error), '      '));
      // A check that already named the server's pid in its verdict has said what happened.
      const said = messageOf(error);
      for (const server of takeUnexpectedExits()) {
        if (!said.includes(`pid ${server.pid}`)) console.log(indent(describeExit(server), '      '));
      }
    });
    runner.on(EVENT_TEST_PENDING, (test) => {
      skipped += 1;
      printResult('–', `${test.title} (skipped)`);
    });
    runner.on(EVENT_RUN_END, () => {
      const total = runner.total;
      const notRun = Math.max(0, total - passed - notMeasured.length - failed - skipped);
      const unmeasured = notMeasured.length > 0 ? `, ${notMeasured.length} not measured` : '';
      const notHere = skipped > 0 ? `, ${skipped} skipped` : '';
      const rest = notRun > 0 ? `, ${notRun} not run yet` : '';
      console.log(`\n${passed} passed${unmeasured}, ${failed} failed${notHere}${rest}`);
    });
  }
}

function printResult(mark: string, title: string): void {
  console.log(`  ${mark} ${title}`);
  for (const line of takeRecordedLines()) console.log(`      ${line}`);
}

function describeRunnable(runnable: Mocha.Runnable): string {
  if (!(runnable instanceof Mocha.Hook)) return runnable.title;
  return /before/.test(runnable.title) ? 'starts the server' : 'stops the server';
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (process.env.COURSE_DEBUG) return error.stack ?? error.message;
  return error.message;
}

function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((line) => prefix + line)
    .join('\n');
}
