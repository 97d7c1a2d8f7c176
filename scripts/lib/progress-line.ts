// One line of progress for a run that takes seconds. On a terminal it is redrawn in
// place; anywhere else (a log, CI) every line sent is kept, so it prints one line at
// each quarter of the run instead.
const REDRAW_INTERVAL_MS = 100;
const LOGGED_STEPS = 4;
const CLEAR_TO_END = '\x1b[K';

export class ProgressLine {
  private readonly timer?: NodeJS.Timeout;
  private loggedSteps = 0;
  private drawn = false;

  // `describe` is called at every redraw, so it can show a clock.
  private readonly describe: () => string;
  private readonly stream: NodeJS.WriteStream;

  constructor(describe: () => string, stream: NodeJS.WriteStream = process.stdout) {
    this.describe = describe;
    this.stream = stream;
    if (stream.isTTY) this.timer = setInterval(() => this.redraw(), REDRAW_INTERVAL_MS);
  }

  // `fraction` of the run (0 to 1) is done.
  update(fraction: number): void {
    if (this.stream.isTTY) return;
    const step = Math.floor(fraction * LOGGED_STEPS);
    if (step <= this.loggedSteps || step >= LOGGED_STEPS) return;
    this.loggedSteps = step;
    this.stream.write(`${this.describe()}\n`);
  }

  // Replaces the progress with the run's last line.
  finish(text: string): void {
    clearInterval(this.timer);
    this.stream.write(this.stream.isTTY ? `\r${text}${CLEAR_TO_END}\n` : `${text}\n`);
    this.drawn = false;
  }

  // Ends the line without a result, for a run that failed.
  stop(): void {
    clearInterval(this.timer);
    if (this.drawn) this.stream.write('\n');
    this.drawn = false;
  }

  private redraw(): void {
    this.stream.write(`\r${this.describe()}${CLEAR_TO_END}`);
    this.drawn = true;
  }
}
