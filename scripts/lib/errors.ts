// Errors that end a command with one line for the learner and no stack trace.

export const EXIT_PASS = 0;
export const EXIT_FAIL = 1;
export const EXIT_USAGE = 2;

// The learner typed something the command does not understand. `showUsage` adds
// the command's usage to the message.
export class UsageError extends Error {
  readonly showUsage: boolean;

  constructor(message: string, showUsage = false) {
    super(message);
    this.showUsage = showUsage;
  }
}

// The learner's code does not do what the lesson asks; the message says what.
export class VerdictError extends Error {}
