// The terminal view of `kiln train`: plain lines for logs (about 20 per run, every
// evaluation, the last step), with the time left; a redrawn bar on a terminal.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Progress } from '../../src/cli/progress.ts';
import type { StepMetrics } from '../../src/train/trainer.ts';

function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = { isTTY, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

/** Step `step` of a run in which every step takes 2 s and 1000 tokens. */
function metrics(step: number, extra: Partial<StepMetrics> = {}): StepMetrics {
  return { step, loss: 3 - step / 100, lr: 1e-3, grad_norm: 1, tokens_per_s: 500, elapsed_s: 2 * step, ...extra };
}

afterEach(() => vi.unstubAllEnvs());

describe('Progress', () => {
  it('writes plain lines with elapsed time and time left, at most ~20 a run plus evaluations', () => {
    const out = sink(false);
    const p = new Progress(100, 0, out.stream);
    for (let s = 1; s <= 100; s++) p.update(metrics(s, s === 50 ? { val_loss: 2.5 } : {}), 2 * s);
    const lines = out.text().trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(22);
    expect(lines[0]).toBe('step 5/100 loss 2.9500 | 500 tok/s | 0:10 elapsed, eta 3:10');
    expect(lines).toContain('step 50/100 loss 2.5000 val 2.5000 | 500 tok/s | 1:40 elapsed, eta 1:40');
    // The last line has nothing left to wait for.
    expect(lines[lines.length - 1]).toBe('step 100/100 loss 2.0000 val 2.5000 | 500 tok/s | 3:20 elapsed');
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
    expect(out.text()).toBe('');
    p.update(metrics(11, { elapsed_s: 40 }), 40);
    expect(out.text()).toBe('step 11/100 loss 2.8900 | 500 tok/s | 0:40 elapsed, eta 1:29\n');
  });

  it('redraws one line with a bar and the time left on a terminal', () => {
    vi.stubEnv('CI', '');
    const out = sink(true);
    const p = new Progress(10, 0, out.stream);
    p.update(metrics(5), 10);
    expect(out.text()).toBe('\r\x1b[2Kstep 5/10 [===========>            ] loss 2.9500 | 500 tok/s | eta 0:10');
  });
});
