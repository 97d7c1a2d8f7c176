// How every course command ends: a learner's mistake is one line and an exit code.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EXIT_FAIL, EXIT_USAGE, UsageError, VerdictError } from './errors.ts';
import { killAllServersSync } from './server-process.ts';

const EXIT_INTERRUPTED = 130;
// Set by npm run watch for the checks it runs: watch says itself why it stops one.
export const QUIET_INTERRUPT_ENV = 'COURSE_QUIET_INTERRUPT';

export function parseCommandLine<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    const flags = [...args, ...flagsNpmKept(args, options)];
    return parseArgs({ args: attachNegativeValues(flags, options), options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, true);
  }
}

// `npm run check lesson-1 --solution`, without the `--`, gives --solution to npm, which
// warns and passes it on only as npm_config_solution=true. Take it from there, except
// for names npm has configs of its own for (a user's npmrc may set yes or force).
const NPM_OWN_CONFIGS = new Set(['yes', 'force', 'all', 'help']);

function flagsNpmKept(args: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  return Object.entries(options)
    .filter(([name, option]) => option.type === 'boolean' && !NPM_OWN_CONFIGS.has(name))
    .filter(([name]) => process.env[`npm_config_${name.replaceAll('-', '_')}`] === 'true')
    .map(([name]) => `--${name}`)
    .filter((flag) => !args.includes(flag));
}

// parseArgs reads "--rps -1" as two options; joined as "--rps=-1", the value reaches
// the command, which can say what is wrong with it.
function attachNegativeValues(args: string[], options: NonNullable<ParseArgsConfig['options']>): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const option = options[args[i].replace(/^--/, '')];
    const isStringOption = args[i].startsWith('--') && option?.type === 'string';
    if (isStringOption && /^-\d/.test(args[i + 1] ?? '')) {
      joined.push(`${args[i]}=${args[i + 1]}`);
      i += 1;
    } else {
      joined.push(args[i]);
    }
  }
  return joined;
}

// Runs a command's main function; ends the servers it started however it ends.
export function runCommand(usage: string, main: () => Promise<number>): void {
  process.on('exit', killAllServersSync);
  process.on('SIGINT', () => interrupt('SIGINT'));
  process.on('SIGTERM', () => interrupt('SIGTERM'));
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof UsageError) {
        console.error(error.message);
        if (error.showUsage) console.error(`\n${usage}`);
        process.exit(EXIT_USAGE);
      }
      if (error instanceof VerdictError) {
        console.error(error.message);
        process.exit(EXIT_FAIL);
      }
      // A bug in the course, not the learner's mistake: this is the one place a stack trace belongs.
      console.error(error);
      process.exit(EXIT_FAIL);
    },
  );
}

function interrupt(signal: NodeJS.Signals): void {
  killAllServersSync();
  if (!process.env[QUIET_INTERRUPT_ENV]) console.error(`\nStopped by ${signal}; every server this command started has been ended.`);
  process.exit(EXIT_INTERRUPTED);
}
