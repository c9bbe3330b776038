// Token + position embedding (llm.c's encoder_forward / encoder_backward).
import type { Buf } from './buf.ts';

// out is (B,T,C); inp is (B,T) token ids; wte is (V,C); wpe is (maxT,C).
// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]. Forward saves nothing (backward reads inp).
export function encoderForward(out: Buf, inp: Int32Array, wte: Buf, wpe: Buf, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = inp[b * T + t] * C;
      const p = t * C;
      for (let i = 0; i < C; i++) out[o + i] = wte[ix + i] + wpe[p + i];
    }
  }
}

// dwte is (V,C); dwpe is (maxT,C); dout is (B,T,C); inp is (B,T). Accumulates (+=).
export function encoderBackward(dwte: Buf, dwpe: Buf, dout: Buf, inp: Int32Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = inp[b * T + t] * C;
      const p = t * C;
      for (let i = 0; i < C; i++) {
        const d = dout[o + i];
        dwte[ix + i] += d;
        dwpe[p + i] += d;
      }
    }
  }
}
