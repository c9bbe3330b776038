// GELU with GPT-2's tanh approximation (PyTorch's approximate='tanh'):
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
import type { Buf } from './buf.ts';

const SCALE = Math.sqrt(2 / Math.PI);
const CUBE = 0.044715;

// out and inp are (N) (N = B*T*4C). Forward saves nothing (backward reads inp).
export function geluForward(out: Buf, inp: Buf, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(SCALE * (x + CUBE * x * x * x)));
  }
}

// dinp, inp and dout are (N). Accumulates (+=) into dinp.
export function geluBackward(dinp: Buf, inp: Buf, dout: Buf, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i];
    const th = Math.tanh(SCALE * (x + CUBE * x * x * x));
    // sech^2 = 1 - tanh^2, which (unlike 1/cosh^2) cannot overflow for large |x|.
    const local = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * SCALE * (1 + 3 * CUBE * x * x);
    dinp[i] += local * dout[i];
  }
}
