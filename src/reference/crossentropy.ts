// The LM head tied to the token embedding, and the fused softmax + cross-entropy
// (llm.c's matmul_forward on wte, softmax_forward, crossentropy_forward and
// crossentropy_softmax_backward).
import type { Buf } from './buf.ts';
import { matmulAcc, matmulAccTransB } from './matmul.ts';

// logits is (N,V) (N = B*T); x is (N,C) (the output of ln_f); wte is (V,C).
// logits = x @ wte^T. Forward saves nothing (backward reads x and wte).
export function logitsForward(logits: Buf, x: Buf, wte: Buf, N: number, C: number, V: number): void {
  logits.fill(0, 0, N * V);
  matmulAccTransB(logits, x, wte, N, C, V);
}

// dx and x are (N,C); dwte and wte are (V,C); dlogits is (N,V).
// Accumulates (+=): dx += dlogits @ wte, dwte += dlogits^T @ x.
export function logitsBackward(dx: Buf, dwte: Buf, dlogits: Buf, x: Buf, wte: Buf, N: number, C: number, V: number): void {
  matmulAcc(dx, dlogits, V, 1, wte, N, V, C);
  matmulAcc(dwte, dlogits, 1, V, x, V, N, C);
}

// losses is (N); probs and logits are (N,V); targets is (N) token ids in [0,V).
// probs = softmax(logits) per row (max subtracted first, so exp cannot overflow);
// losses[n] = -log probs[n, targets[n]], computed as log(sum) - (logit - max) so a
// probability that underflows in f32 still gives a finite loss. Forward saves probs.
export function softmaxCrossEntropyForward(losses: Buf, probs: Buf, logits: Buf, targets: Int32Array, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const r = n * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[r + v] > max) max = logits[r + v];
    let sum = 0;
    for (let v = 0; v < V; v++) {
      const e = Math.exp(logits[r + v] - max);
      probs[r + v] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let v = 0; v < V; v++) probs[r + v] *= inv;
    losses[n] = Math.log(sum) - (logits[r + targets[n]] - max);
  }
}

// dlogits and probs are (N,V); targets is (N); scale is d(total loss)/d(losses[n]), the
// same for every position (1/(B*T*microBatches) for a mean). Writes (not +=):
// dlogits = (probs - onehot(targets)) * scale.
export function softmaxCrossEntropyBackward(dlogits: Buf, probs: Buf, targets: Int32Array, scale: number, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const r = n * V;
    for (let v = 0; v < V; v++) dlogits[r + v] = probs[r + v] * scale;
    dlogits[r + targets[n]] -= scale;
  }
}
