// LayerNorm over the last dimension (llm.c's layernorm_forward / layernorm_backward),
// with PyTorch's semantics: biased variance, eps 1e-5 inside the square root.
import type { Buf } from './buf.ts';

const EPS = 1e-5;

// out and inp are (N,C) (N = B*T); weight and bias are (C); mean and rstd are (N).
// Forward saves mean and rstd (1/sqrt(var + eps)) for the backward pass.
export function layernormForward(out: Buf, mean: Buf, rstd: Buf, inp: Buf, weight: Buf, bias: Buf, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let m = 0;
    for (let i = 0; i < C; i++) m += inp[x + i];
    m /= C;
    let v = 0;
    for (let i = 0; i < C; i++) {
      const d = inp[x + i] - m;
      v += d * d;
    }
    v /= C;
    const s = 1 / Math.sqrt(v + EPS);
    for (let i = 0; i < C; i++) out[x + i] = (inp[x + i] - m) * s * weight[i] + bias[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

// dinp, dout and inp are (N,C); dweight, dbias and weight are (C); mean and rstd are
// (N) as saved by the forward pass. Accumulates (+=) into dinp, dweight and dbias.
export function layernormBackward(
  dinp: Buf, dweight: Buf, dbias: Buf, dout: Buf, inp: Buf, weight: Buf, mean: Buf, rstd: Buf, N: number, C: number,
): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    const m = mean[n];
    const s = rstd[n];
    // dnorm = dout * weight; dinp = s * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let i = 0; i < C; i++) {
      const norm = (inp[x + i] - m) * s;
      const dnorm = weight[i] * dout[x + i];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let i = 0; i < C; i++) {
      const norm = (inp[x + i] - m) * s;
      const d = dout[x + i];
      const dnorm = weight[i] * d;
      dbias[i] += d;
      dweight[i] += norm * d;
      dinp[x + i] += (dnorm - dnormMean - norm * dnormNormMean) * s;
    }
  }
}
