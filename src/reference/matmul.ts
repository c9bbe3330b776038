// Linear layers with Hugging Face GPT-2's Conv1D layout: weight is [in, out] = (C,OC),
// so out = inp @ weight + bias (llm.c's matmul_forward / matmul_backward, with the
// weight transposed relative to llm.c's nn.Linear layout).
//
// Speed: the `names` preset must train on one core, so the two kernels below are
// register-blocked (measured on the names shapes, N=512, C=64: a plain i-k-j loop
// ran at 0.9 GMAC/s, i-k-j unrolled by 4 in k at 1.0, 2x4 dot-product blocks at
// 1.7 and 4 rows x 4 k at 2.0). Every inner loop runs along contiguous rows and
// nothing allocates. crossentropy.ts reuses them for the tied LM head.
import type { Buf } from './buf.ts';

// out is (N,M); A is (N,K) read as A(i,k) = a[i*ars + k*acs] (so a transposed matrix
// is just other strides); b is (K,M). Accumulates out += A @ b, four rows of out and
// four k at a time: 4 loads of b feed 16 multiply-adds.
export function matmulAcc(out: Buf, a: Buf, ars: number, acs: number, b: Buf, N: number, K: number, M: number): void {
  let i = 0;
  for (; i + 4 <= N; i += 4) {
    const o0 = i * M;
    const o1 = o0 + M;
    const o2 = o1 + M;
    const o3 = o2 + M;
    const r0 = i * ars;
    const r1 = r0 + ars;
    const r2 = r1 + ars;
    const r3 = r2 + ars;
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const c0 = k * acs;
      const c1 = c0 + acs;
      const c2 = c1 + acs;
      const c3 = c2 + acs;
      const a00 = a[r0 + c0], a01 = a[r0 + c1], a02 = a[r0 + c2], a03 = a[r0 + c3];
      const a10 = a[r1 + c0], a11 = a[r1 + c1], a12 = a[r1 + c2], a13 = a[r1 + c3];
      const a20 = a[r2 + c0], a21 = a[r2 + c1], a22 = a[r2 + c2], a23 = a[r2 + c3];
      const a30 = a[r3 + c0], a31 = a[r3 + c1], a32 = a[r3 + c2], a33 = a[r3 + c3];
      const b0 = k * M;
      const b1 = b0 + M;
      const b2 = b1 + M;
      const b3 = b2 + M;
      for (let j = 0; j < M; j++) {
        const v0 = b[b0 + j], v1 = b[b1 + j], v2 = b[b2 + j], v3 = b[b3 + j];
        out[o0 + j] += a00 * v0 + a01 * v1 + a02 * v2 + a03 * v3;
        out[o1 + j] += a10 * v0 + a11 * v1 + a12 * v2 + a13 * v3;
        out[o2 + j] += a20 * v0 + a21 * v1 + a22 * v2 + a23 * v3;
        out[o3 + j] += a30 * v0 + a31 * v1 + a32 * v2 + a33 * v3;
      }
    }
    for (; k < K; k++) {
      const c = k * acs;
      const a0 = a[r0 + c], a1 = a[r1 + c], a2 = a[r2 + c], a3 = a[r3 + c];
      const bk = k * M;
      for (let j = 0; j < M; j++) {
        const v = b[bk + j];
        out[o0 + j] += a0 * v;
        out[o1 + j] += a1 * v;
        out[o2 + j] += a2 * v;
        out[o3 + j] += a3 * v;
      }
    }
  }
  for (; i < N; i++) {
    const o = i * M;
    const r = i * ars;
    for (let k = 0; k < K; k++) {
      const av = a[r + k * acs];
      const bk = k * M;
      for (let j = 0; j < M; j++) out[o + j] += av * b[bk + j];
    }
  }
}

// out is (N,M); a is (N,K); b is (M,K). Accumulates out += a @ b^T as dot products of
// contiguous rows, in blocks of 2 rows x 4 columns (8 sums held in registers).
export function matmulAccTransB(out: Buf, a: Buf, b: Buf, N: number, K: number, M: number): void {
  let i = 0;
  for (; i + 2 <= N; i += 2) {
    const x0 = i * K;
    const x1 = x0 + K;
    const o0 = i * M;
    const o1 = o0 + M;
    let j = 0;
    for (; j + 4 <= M; j += 4) {
      const y0 = j * K;
      const y1 = y0 + K;
      const y2 = y1 + K;
      const y3 = y2 + K;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let k = 0; k < K; k++) {
        const p = a[x0 + k], q = a[x1 + k];
        const w0 = b[y0 + k], w1 = b[y1 + k], w2 = b[y2 + k], w3 = b[y3 + k];
        s00 += p * w0; s01 += p * w1; s02 += p * w2; s03 += p * w3;
        s10 += q * w0; s11 += q * w1; s12 += q * w2; s13 += q * w3;
      }
      out[o0 + j] += s00; out[o0 + j + 1] += s01; out[o0 + j + 2] += s02; out[o0 + j + 3] += s03;
      out[o1 + j] += s10; out[o1 + j + 1] += s11; out[o1 + j + 2] += s12; out[o1 + j + 3] += s13;
    }
    for (; j < M; j++) {
      const y = j * K;
      let s0 = 0, s1 = 0;
      for (let k = 0; k < K; k++) {
        const w = b[y + k];
        s0 += a[x0 + k] * w;
        s1 += a[x1 + k] * w;
      }
      out[o0 + j] += s0;
      out[o1 + j] += s1;
    }
  }
  for (; i < N; i++) {
    const x = i * K;
    const o = i * M;
    for (let j = 0; j < M; j++) {
      const y = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += a[x + k] * b[y + k];
      out[o + j] += s;
    }
  }
}

// Scratch for a transposed weight, one per element type so that matmulAcc only ever
// sees one array type per call site in f32 runs (mixing types slows V8's code down).
let scratch32 = new Float32Array(0);
let scratch64 = new Float64Array(0);

// w is (R,K); returns w^T (K,R) in a reused scratch buffer.
function transposed(w: Buf, R: number, K: number): Buf {
  let t: Buf;
  if (w instanceof Float32Array) {
    if (scratch32.length < R * K) scratch32 = new Float32Array(R * K);
    t = scratch32;
  } else {
    if (scratch64.length < R * K) scratch64 = new Float64Array(R * K);
    t = scratch64;
  }
  for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) t[k * R + r] = w[r * K + k];
  return t;
}

// out is (N,OC) (N = B*T); inp is (N,C); weight is (C,OC); bias is (OC) or null.
// out = inp @ weight + bias. Forward saves nothing (backward reads inp and weight).
export function matmulForward(out: Buf, inp: Buf, weight: Buf, bias: Buf | null, N: number, C: number, OC: number): void {
  for (let n = 0; n < N; n++) {
    const o = n * OC;
    if (bias) for (let j = 0; j < OC; j++) out[o + j] = bias[j];
    else for (let j = 0; j < OC; j++) out[o + j] = 0;
  }
  matmulAcc(out, inp, C, 1, weight, N, C, OC);
}

// dinp and inp are (N,C); dweight and weight are (C,OC); dbias is (OC) or null; dout
// is (N,OC). Accumulates (+=): dinp += dout @ weight^T, dweight += inp^T @ dout,
// dbias += the column sums of dout.
export function matmulBackward(
  dinp: Buf, dweight: Buf, dbias: Buf | null, dout: Buf, inp: Buf, weight: Buf, N: number, C: number, OC: number,
): void {
  const wt = transposed(weight, C, OC);
  matmulAcc(dinp, dout, OC, 1, wt, N, OC, C);
  matmulAcc(dweight, inp, 1, C, dout, C, N, OC);
  if (dbias) {
    for (let n = 0; n < N; n++) {
      const d = n * OC;
      for (let j = 0; j < OC; j++) dbias[j] += dout[d + j];
    }
  }
}
