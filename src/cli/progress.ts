// The terminal view of a run: a one-line progress bar on a TTY, plain lines otherwise
// (logs, CI), both written to stderr so stdout stays machine-readable.
import type { StepMetrics } from '../train/trainer.ts';

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(sec).padStart(2, '0')}`;
}

function fmtRate(x: number): string {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
}

export class Progress {
  private readonly tty: boolean;
  private lastVal: number | null = null;
  private lastPrinted = 0;
  private readonly startStep: number;
  /** The first update of this run: the pace is counted from it, so the one-time start-up (pipeline compilation, first batch) does not inflate the time left. */
  private first: { step: number; elapsed: number } | null = null;

  constructor(
    private readonly total: number,
    startStep: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = !!out.isTTY && !process.env.CI;
    this.startStep = startStep;
  }

  update(m: StepMetrics, elapsedThisRun: number): void {
    if (m.val_loss !== undefined) this.lastVal = m.val_loss;
    const eta = this.timeLeft(m.step, elapsedThisRun);
    const val = this.lastVal !== null ? ` val ${this.lastVal.toFixed(4)}` : '';
    const stats = `loss ${m.loss.toFixed(4)}${val} | ${fmtRate(m.tokens_per_s)} tok/s${m.mfu !== undefined ? ` | MFU ${(m.mfu * 100).toFixed(1)}%` : ''}`;
    if (this.tty) {
      const width = 24;
      const filled = Math.round((width * m.step) / this.total);
      const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(width - filled);
      this.out.write(`\r\x1b[2Kstep ${m.step}/${this.total} [${bar}] ${stats} | eta ${fmtTime(eta)}`);
    } else if (m.val_loss !== undefined || m.step === this.total || m.step - this.lastPrinted >= Math.max(1, Math.ceil(this.total / 20))) {
      this.lastPrinted = m.step;
      const left = m.step < this.total ? `, eta ${fmtTime(eta)}` : '';
      this.out.write(`step ${m.step}/${this.total} ${stats} | ${fmtTime(m.elapsed_s)} elapsed${left}\n`);
    }
  }

  private timeLeft(step: number, elapsed: number): number {
    const left = this.total - step;
    if (this.first === null) {
      this.first = { step, elapsed };
      const done = step - this.startStep;
      return done > 0 ? (elapsed / done) * left : NaN;
    }
    const done = step - this.first.step;
    return done > 0 ? ((elapsed - this.first.elapsed) / done) * left : NaN;
  }

  message(line: string): void {
    this.out.write(`${this.tty ? '\r\x1b[2K' : ''}${line}\n`);
  }

  end(): void {
    if (this.tty) this.out.write('\n');
  }
}
