// The terminal view of `kiln train`: plain lines for logs (at least every 5 s, every
// evaluation, the last step), with the time left; on a terminal one redrawn line that
// fits its width; a val loss from an earlier step marked with that step; one line with
// the run's time once the pace is known.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fmtDuration, Progress } from '../../src/cli/progress.ts';
import type { StepMetrics } from '../../src/train/trainer.ts';

function sink(isTTY: boolean, columns?: number): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = { isTTY, columns, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

/** Step `step` of a run in which every step takes 2 s and 1000 tokens. */
function metrics(step: number, extra: Partial<StepMetrics> = {}): StepMetrics {
  return { step, loss: 3 - step / 100, lr: 1e-3, grad_norm: 1, tokens_per_s: 500, elapsed_s: 2 * step, ...extra };
}

/** What a terminal shows after a write: the text after the last carriage return and erase-line. */
function screenLine(written: string): string {
  return written.slice(written.lastIndexOf('\r\x1b[2K') + 5);
}

afterEach(() => vi.unstubAllEnvs());

describe('Progress in a log (no TTY)', () => {
  it('writes a line at the first step, at least every 5 s, at every evaluation and at the end', () => {
    const out = sink(false);
    const p = new Progress(100, 0, out.stream);
    for (let s = 1; s <= 100; s++) p.update(metrics(s, s === 50 ? { val_loss: 2.5 } : {}), 2 * s);
    const lines = out.text().trim().split('\n').filter((l) => l.startsWith('step '));
    // 2 s a step: steps 1, 4, 7, ... (every 3 steps = 6 s), plus 50 (evaluation) and 100.
    const steps = lines.map((l) => Number(/^step (\d+)/.exec(l)![1]));
    expect(steps.slice(0, 4)).toEqual([1, 4, 7, 10]);
    for (let i = 1; i < steps.length; i++) expect(2 * (steps[i] - steps[i - 1]) <= 6 || steps[i] === 50 || steps[i] === 100).toBe(true);
    expect(steps).toContain(50);
    expect(lines[0]).toBe('step 1/100 loss 2.9900 | 500 tok/s | 0:02 elapsed, eta 3:18');
    expect(lines).toContain('step 50/100 loss 2.5000 val 2.5000 | 500 tok/s | 1:40 elapsed, eta 1:40');
    // Later lines mark the val loss as measured at step 50; the last has nothing left to wait for.
    expect(lines[lines.length - 1]).toBe('step 100/100 loss 2.0000 val 2.5000@50 | 500 tok/s | 3:20 elapsed');
  });

  it('prints by time, not by a share of the steps: 1000 fast steps give a handful of lines', () => {
    const out = sink(false);
    const p = new Progress(1000, 0, out.stream);
    // 10 ms a step: 10 s in all, so lines at the first step, about every 5 s and the last.
    for (let s = 1; s <= 1000; s++) p.update(metrics(s, { elapsed_s: s / 100 }), s / 100);
    const lines = out.text().trim().split('\n').filter((l) => l.startsWith('step '));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.length).toBeLessThanOrEqual(4);
  });

  it('a slow run still shows a line every 5 s: 30 s steps print every step', () => {
    const out = sink(false);
    const p = new Progress(5000, 0, out.stream);
    for (let s = 1; s <= 3; s++) p.update(metrics(s, { elapsed_s: 30 * s }), 30 * s);
    expect(out.text().split('\n').filter((l) => l.startsWith('step ')).length).toBe(3);
  });

  it('counts the time left from this run\'s own pace after a resume', () => {
    const out = sink(false);
    const p = new Progress(100, 60, out.stream);
    // 20 steps of this run in 10 s: the 20 left take 10 s, whatever the saved run took.
    p.update(metrics(80, { elapsed_s: 500 }), 10);
    expect(out.text()).toBe('step 80/100 loss 2.2000 | 500 tok/s | 8:20 elapsed, eta 0:10\n');
  });

  it('leaves the first step\'s start-up (pipeline compilation) out of the pace', () => {
    const out = sink(false);
    const p = new Progress(100, 0, out.stream);
    // Step 1 takes 30 s, every later one 1 s: at step 11 the 89 steps left take 89 s
    // (averaging over all 11 steps would say 5:23).
    p.update(metrics(1, { elapsed_s: 30 }), 30);
    expect(out.text()).toBe('step 1/100 loss 2.9900 | 500 tok/s | 0:30 elapsed, eta 49:30\n');
    p.update(metrics(11, { elapsed_s: 40 }), 40);
    expect(out.text().split('\n')[1]).toBe('step 11/100 loss 2.8900 | 500 tok/s | 0:40 elapsed, eta 1:29');
  });
});

describe('Progress on a terminal', () => {
  it('redraws one line with a bar, the losses and the time left', () => {
    vi.stubEnv('CI', '');
    const out = sink(true, 100);
    const p = new Progress(10, 0, out.stream);
    p.update(metrics(5), 10);
    expect(out.text()).toBe('\r\x1b[2Kstep 5/10 [===========>            ] loss 2.9500 | 500 tok/s | eta 0:10');
  });

  it('never reaches the last column: on 80 columns the fullest line fits, narrower terminals drop fields', () => {
    vi.stubEnv('CI', '');
    const full = metrics(4999, { loss: 12.3456, val_loss: undefined, tokens_per_s: 1_234_567, mfu: 0.1234, elapsed_s: 359_999 });
    const seen: Record<number, string> = {};
    for (const cols of [200, 120, 80, 60, 40, 30, 20]) {
      const out = sink(true, cols);
      const p = new Progress(10000, 0, out.stream, { estimateAfterS: Infinity });
      p.update(metrics(2500, { val_loss: 12.3412 }), 100);
      p.update(full, 200);
      const line = screenLine(out.text());
      expect(line.length, `${cols} columns: ${JSON.stringify(line)}`).toBeLessThan(cols);
      expect(line).toMatch(/^step 4999\/10000/);
      seen[cols] = line;
    }
    // Wide: everything, the stale val loss marked with its step.
    expect(seen[120]).toMatch(/^step 4999\/10000 \[=+> +\] loss 12\.3456 val 12\.3412@2500 \| 1\.23M tok\/s \| MFU 12\.3% \| eta \d+:\d\d$/);
    // 80 with these extreme values: the bar goes first, then MFU.
    expect(seen[80]).toBe('step 4999/10000 loss 12.3456 val 12.3412@2500 | 1.23M tok/s | eta 3:20');
    // Narrow: MFU goes first, then tok/s, then the val loss; step and loss stay.
    expect(seen[60]).not.toContain('MFU');
    expect(seen[30]).toBe('step 4999/10000 loss 12.3456');
  });

  it('on 80 columns a typical line keeps every field', () => {
    vi.stubEnv('CI', '');
    const out = sink(true, 80);
    const p = new Progress(300, 0, out.stream);
    p.update(metrics(100, { val_loss: 2.3412 }), 10);
    p.update(metrics(150, { loss: 2.3456, tokens_per_s: 14_800, mfu: 0.012, elapsed_s: 15 }), 15);
    expect(screenLine(out.text())).toBe('step 150/300 loss 2.3456 val 2.3412@100 | 14.8k tok/s | MFU 1.2% | eta 0:15');
  });

  it('a terminal of unknown width is taken as 80 columns', () => {
    vi.stubEnv('CI', '');
    const out = sink(true);
    const p = new Progress(100000, 0, out.stream);
    p.update(metrics(1, { val_loss: 2.5 }), 1);
    p.update(metrics(99999, { mfu: 0.5, tokens_per_s: 9_999_999 }), 2);
    expect(screenLine(out.text()).length).toBeLessThan(80);
  });
});

describe('the run\'s time', () => {
  it('is said once, after the first steps, with what the caller adds', () => {
    const out = sink(false);
    const seen: number[] = [];
    const p = new Progress(1000, 0, out.stream, { onEstimate: (e) => (seen.push(e.totalS), ['kiln: advice']) });
    // 1 s a step after a 100 s first step: measured once 5 s have passed since the first
    // (at step 6), leaving 994 steps (17 min); the whole run counts the first 105 s too.
    for (let s = 1; s <= 10; s++) p.update(metrics(s, { elapsed_s: 99 + s }), 99 + s);
    const notes = out.text().split('\n').filter((l) => l.startsWith('kiln:'));
    expect(notes).toEqual(['kiln: about 17 min to go at 1.0 s a step (the whole run: 18 min)', 'kiln: advice']);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeCloseTo(105 + 994, 6);
  });

  it('is left out of a run that ends in seconds', () => {
    const out = sink(false);
    const p = new Progress(30, 0, out.stream);
    for (let s = 1; s <= 30; s++) p.update(metrics(s, { elapsed_s: s / 10 }), s / 10);
    expect(out.text()).not.toContain('to go');
  });

  it('reads as people say durations', () => {
    expect(fmtDuration(40)).toBe('40 s');
    expect(fmtDuration(12 * 60)).toBe('12 min');
    expect(fmtDuration(3.5 * 3600)).toBe('3.5 h');
    expect(fmtDuration(30 * 3600)).toBe('30 h');
    expect(fmtDuration(100 * 3600)).toBe('4.2 days');
  });
});
