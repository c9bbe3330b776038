// The terminal view of a run, written to stderr so stdout stays machine-readable: on a
// terminal one redrawn line that fits its width (fields are dropped, least useful first,
// rather than letting the line wrap, which would leave a new line at every redraw); in a
// log (no TTY, or CI) a plain line at least every few seconds, at every evaluation and at
// the end. A val loss from an earlier step is marked with its step ("val 2.3412@200").
// Once the first steps have set the pace, one line says how long the run will take.
import type { StepMetrics } from '../train/trainer.ts';

/** m:ss or h:mm:ss. */
export function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(sec).padStart(2, '0')}`;
}

/** A duration as a person says it: "40 s", "12 min", "3.5 h", "4.2 days". */
export function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return 'an unknown time';
  if (s < 90) return `${Math.max(1, Math.round(s))} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${+(s / 3600).toFixed(s < 10 * 3600 ? 1 : 0)} h`;
  return `${+(s / 86400).toFixed(1)} days`;
}

function fmtRate(x: number): string {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
}

function fmtStepTime(s: number): string {
  return s < 1 ? `${Math.max(1, Math.round(s * 1000))} ms` : `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
}

/** The run's time, once the first steps have set its pace. */
export interface RunEstimate {
  /** Seconds left at this pace. */
  leftS: number;
  /** The whole run's time: what it has taken so far (earlier sessions included) plus what is left. */
  totalS: number;
  secondsPerStep: number;
}

export interface ProgressOptions {
  /** In a log, the longest gap between lines, in seconds (besides evaluations and the last step). */
  logEveryS?: number;
  /** The estimate line is left out when less than this is left (a short run needs none). */
  estimateAfterS?: number;
  /** Called once with the run's estimate; the lines it returns follow the estimate (advice). */
  onEstimate?(e: RunEstimate): string[] | void;
}

/** A piece of the terminal line: `drop` orders what goes first when it does not fit (0: never). */
interface Field {
  text: string;
  drop: number;
}

export class Progress {
  private readonly tty: boolean;
  private lastVal: { loss: number; step: number } | null = null;
  /** When the last plain line was written, in seconds of this run (-Infinity: none yet). */
  private lastPrintedAt = -Infinity;
  private readonly startStep: number;
  /** The first update of this run: the pace is counted from it, so the one-time start-up (pipeline compilation, first batch) does not inflate the time left. */
  private first: { step: number; elapsed: number } | null = null;
  private estimated = false;
  /** The bar's width on a terminal: at most 24 cells, only ever narrowed. */
  private barCells = 24;
  /** The terminal width barCells was set for: a resized terminal starts again. */
  private barFor = 0;
  private readonly opts: Required<Omit<ProgressOptions, 'onEstimate'>> & Pick<ProgressOptions, 'onEstimate'>;

  constructor(
    private readonly total: number,
    startStep: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    opts: ProgressOptions = {},
  ) {
    this.tty = !!out.isTTY && !process.env.CI;
    this.startStep = startStep;
    this.opts = { logEveryS: 5, estimateAfterS: 20, ...opts };
  }

  /** The terminal's width less one column (writing the last column wraps on some terminals); 80 when unknown. */
  private width(): number {
    const cols = this.out.columns;
    return (typeof cols === 'number' && cols > 0 ? cols : 80) - 1;
  }

  update(m: StepMetrics, elapsedThisRun: number): void {
    if (m.val_loss !== undefined) this.lastVal = { loss: m.val_loss, step: m.step };
    const pace = this.pace(m.step, elapsedThisRun);
    const eta = pace === null ? NaN : pace * (this.total - m.step);
    const val = this.lastVal === null ? '' : `val ${this.lastVal.loss.toFixed(4)}${this.lastVal.step === m.step ? '' : `@${this.lastVal.step}`}`;
    const rate = `${fmtRate(m.tokens_per_s)} tok/s`;
    const mfu = m.mfu !== undefined ? `MFU ${(m.mfu * 100).toFixed(1)}%` : '';
    if (this.tty) {
      this.out.write(`\r\x1b[2K${this.ttyLine(m, val, rate, mfu, eta)}`);
    } else if (m.val_loss !== undefined || m.step === this.total || elapsedThisRun - this.lastPrintedAt >= this.opts.logEveryS) {
      this.lastPrintedAt = elapsedThisRun;
      const stats = [`loss ${m.loss.toFixed(4)}${val ? ` ${val}` : ''}`, rate, mfu].filter(Boolean).join(' | ');
      const left = m.step < this.total && Number.isFinite(eta) ? `, eta ${fmtTime(eta)}` : '';
      this.out.write(`step ${m.step}/${this.total} ${stats} | ${fmtTime(m.elapsed_s)} elapsed${left}\n`);
    }
    if (pace !== null && !this.estimated) this.estimate(m, elapsedThisRun, pace);
  }

  /** The line for a terminal of this width: every field that fits, then a bar in the room left. */
  private ttyLine(m: StepMetrics, val: string, rate: string, mfu: string, eta: number): string {
    const width = this.width();
    const fields: Field[] = [
      { text: `loss ${m.loss.toFixed(4)}`, drop: 0 },
      ...(val ? [{ text: val, drop: 3 }] : []),
      { text: `| ${rate}`, drop: 2 },
      ...(mfu ? [{ text: `| ${mfu}`, drop: 1 }] : []),
      ...(Number.isFinite(eta) ? [{ text: `| eta ${fmtTime(eta)}`, drop: 4 }] : []),
    ];
    const head = `step ${m.step}/${this.total}`;
    const join = (fs: Field[]) => [head, ...fs.map((f) => f.text)].join(' ');
    let kept = fields;
    while (join(kept).length > width && kept.some((f) => f.drop > 0)) {
      const worst = Math.min(...kept.filter((f) => f.drop > 0).map((f) => f.drop));
      kept = kept.filter((f) => f.drop !== worst);
    }
    let line = join(kept);
    // A bar of 10 to 24 cells where there is room for one. Its width is set for the
    // widest line of this kind (a val loss marked with the last step, five-figure
    // throughput) and never grows back, so the numbers after it do not jump about.
    const widest = `${head} loss ${m.loss.toFixed(4)} val 00.0000@${this.total} | 000.0k tok/s${mfu ? ' | MFU 00.0%' : ''} | eta 00:00`;
    const room = width - Math.max(line.length, kept.length === fields.length ? widest.length : 0) - 3;
    if (width !== this.barFor) [this.barCells, this.barFor] = [24, width];
    this.barCells = Math.min(this.barCells, room);
    if (this.barCells >= 10 && line.length + 3 + this.barCells <= width) {
      const cells = this.barCells;
      const filled = Math.round((cells * m.step) / this.total);
      const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? '>' : '') + ' '.repeat(cells - filled);
      line = `${head} [${bar}] ${line.slice(head.length + 1)}`;
    }
    return line.length > width ? line.slice(0, width) : line;
  }

  /** Seconds per step of this run, not counting its first update (null until there is a step to measure). */
  private pace(step: number, elapsed: number): number | null {
    if (this.first === null) {
      this.first = { step, elapsed };
      const done = step - this.startStep;
      return done > 0 && elapsed > 0 ? elapsed / done : null;
    }
    const done = step - this.first.step;
    return done > 0 ? (elapsed - this.first.elapsed) / done : null;
  }

  /** Once the pace is measured over a few seconds or 20 steps: how long the run takes, in one line. */
  private estimate(m: StepMetrics, elapsed: number, pace: number): void {
    const first = this.first!;
    const measured = m.step - first.step >= 20 || (m.step > first.step && elapsed - first.elapsed >= 5);
    if (!measured || m.step >= this.total) return;
    this.estimated = true;
    const leftS = pace * (this.total - m.step);
    const e: RunEstimate = { leftS, totalS: m.elapsed_s + leftS, secondsPerStep: pace };
    const extra = this.opts.onEstimate?.(e) ?? [];
    if (leftS < this.opts.estimateAfterS && !extra.length) return;
    this.message(`kiln: about ${fmtDuration(leftS)} to go at ${fmtStepTime(pace)} a step (the whole run: ${fmtDuration(e.totalS)})`);
    for (const line of extra) this.message(line);
  }

  message(line: string): void {
    this.out.write(`${this.tty ? '\r\x1b[2K' : ''}${line}\n`);
  }

  end(): void {
    if (this.tty) this.out.write('\n');
  }
}
