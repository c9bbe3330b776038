// Causal multi-head self-attention (llm.c's attention_forward / attention_backward),
// split the way Hugging Face GPT-2 splits c_attn's output: qkv[b,t,:] is q, k, v
// concatenated, each C = NH*HS wide, head h owning channels h*HS..(h+1)*HS of each.
import { dropoutKeep, dropoutScale, dropoutThreshold } from '../core/dropout.ts';
import type { Buf } from './buf.ts';
import type { DropoutMask } from './dropout.ts';

/** The factor att[i] is multiplied by on its way to the output: 1, or dropout's 0 or 1/(1-p). */
function dropFactor(mask: DropoutMask | undefined): (i: number) => number {
  if (!mask || mask.p === 0) return () => 1;
  const threshold = dropoutThreshold(mask.p);
  const scale = dropoutScale(mask.p);
  return (i) => (dropoutKeep(mask.key, i, threshold) ? scale : 0);
}

// out is (B,T,C); qkv is (B,T,3C); preatt and att are (B,NH,T,T).
// preatt[b,h,t,t2] = q_t . k_t2 / sqrt(HS) and att = softmax over t2 <= t; entries with
// t2 > t (masked) are written as 0 in both. out[b,t,h] = sum_t2 att[b,h,t,t2] v_t2.
// Forward saves att (preatt is kept for the kernel tests, backward does not read it).
// With a dropout mask (nanoGPT's attn_dropout) the values are weighted by the dropped
// probabilities, mask element ((b*NH+h)*T+t)*T+t2; att itself stays the softmax.
export function attentionForward(
  out: Buf, preatt: Buf, att: Buf, qkv: Buf, B: number, T: number, C: number, NH: number, dropout?: DropoutMask,
): void {
  const drop = dropFactor(dropout);
  const C3 = 3 * C;
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const q = (b * T + t) * C3 + h * HS;
        const row = ((b * NH + h) * T + t) * T;
        // pass 1: scores and their maximum
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * C3 + C + h * HS;
          let s = 0;
          for (let i = 0; i < HS; i++) s += qkv[q + i] * qkv[k + i];
          s *= scale;
          preatt[row + t2] = s;
          if (s > max) max = s;
        }
        // pass 2: exponentials and their sum (the max keeps exp from overflowing)
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const e = Math.exp(preatt[row + t2] - max);
          att[row + t2] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let t2 = 0; t2 <= t; t2++) att[row + t2] *= inv;
        for (let t2 = t + 1; t2 < T; t2++) {
          preatt[row + t2] = 0;
          att[row + t2] = 0;
        }
        // pass 3: weighted sum of the values
        const o = (b * T + t) * C + h * HS;
        for (let i = 0; i < HS; i++) out[o + i] = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const v = (b * T + t2) * C3 + 2 * C + h * HS;
          const a = att[row + t2] * drop(row + t2);
          for (let i = 0; i < HS; i++) out[o + i] += a * qkv[v + i];
        }
      }
    }
  }
}

// dqkv and qkv are (B,T,3C); dpreatt, datt and att are (B,NH,T,T); dout is (B,T,C).
// Accumulates (+=) into dqkv, and into the scratch gradients dpreatt and datt (which
// the caller zeroes first; they are outputs only so kernels can be compared with them).
// datt is the gradient of the softmax output (before dropout); the mask is the forward's.
export function attentionBackward(
  dqkv: Buf, dpreatt: Buf, datt: Buf, dout: Buf, qkv: Buf, att: Buf, B: number, T: number, C: number, NH: number,
  dropout?: DropoutMask,
): void {
  const drop = dropFactor(dropout);
  const C3 = 3 * C;
  const HS = C / NH;
  const scale = 1 / Math.sqrt(HS);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let t = 0; t < T; t++) {
        const row = ((b * NH + h) * T + t) * T;
        const o = (b * T + t) * C + h * HS;
        const q = (b * T + t) * C3 + h * HS;
        // out = att @ v: into datt and dv
        for (let t2 = 0; t2 <= t; t2++) {
          const v = (b * T + t2) * C3 + 2 * C + h * HS;
          const z = drop(row + t2);
          const a = att[row + t2] * z;
          let s = 0;
          for (let i = 0; i < HS; i++) {
            s += qkv[v + i] * dout[o + i];
            dqkv[v + i] += a * dout[o + i];
          }
          datt[row + t2] += s * z;
        }
        // softmax: dpreatt_j = att_j (datt_j - sum_i att_i datt_i)
        let dot = 0;
        for (let t2 = 0; t2 <= t; t2++) dot += att[row + t2] * datt[row + t2];
        for (let t2 = 0; t2 <= t; t2++) dpreatt[row + t2] += att[row + t2] * (datt[row + t2] - dot);
        // preatt = q . k * scale: into dq and dk
        for (let t2 = 0; t2 <= t; t2++) {
          const k = (b * T + t2) * C3 + C + h * HS;
          const d = dpreatt[row + t2] * scale;
          for (let i = 0; i < HS; i++) {
            dqkv[q + i] += qkv[k + i] * d;
            dqkv[k + i] += qkv[q + i] * d;
          }
        }
      }
    }
  }
}
