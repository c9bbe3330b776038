// The residual connection: an elementwise sum (llm.c's residual_forward / residual_backward).
import type { Buf } from './buf.ts';

// out, a and b are (N) (N = B*T*C). Forward saves nothing.
export function residualForward(out: Buf, a: Buf, b: Buf, N: number): void {
  for (let i = 0; i < N; i++) out[i] = a[i] + b[i];
}

// da, db and dout are (N). Accumulates (+=) dout into both.
export function residualBackward(da: Buf, db: Buf, dout: Buf, N: number): void {
  for (let i = 0; i < N; i++) {
    const d = dout[i];
    da[i] += d;
    db[i] += d;
  }
}
