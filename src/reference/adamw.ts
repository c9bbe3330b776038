// Global gradient-norm clipping and AdamW, with PyTorch's semantics
// (torch.nn.utils.clip_grad_norm_ and torch.optim.AdamW): decoupled weight decay
// applied only where the model spec says so (nanoGPT decays 2-D weights and
// embeddings, not biases or LayerNorm), bias correction 1 - beta^t.
import type { ModelSpec } from '../core/model-spec.ts';
import type { Buf } from './buf.ts';

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

// grads is (numParams) in the spec's flat layout. The global L2 norm, accumulated in
// f64 so that millions of f32 squares do not lose the small ones.
export function gradNorm(grads: Buf): number {
  let s = 0;
  for (let i = 0; i < grads.length; i++) s += grads[i] * grads[i];
  return Math.sqrt(s);
}

/** The factor clip_grad_norm_ multiplies gradients by: min(1, clip/(norm + 1e-6)); 1 when clip is 0. */
export function clipScale(norm: number, clip: number): number {
  if (clip <= 0) return 1;
  return Math.min(1, clip / (norm + 1e-6));
}

// params, grads, m and v are (numParams) in the spec's flat layout; t is the 1-based
// step; gradScale multiplies every gradient first (the clipping factor). Updates
// params, m and v in place:
//   p -= lr*wd*p (decayed parameters only); g = grad*gradScale
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
export function adamwUpdate(
  params: Buf, grads: Buf, m: Buf, v: Buf, spec: ModelSpec, hp: AdamWHyper, t: number, gradScale: number,
): void {
  const { lr, beta1, beta2, eps, weightDecay } = hp;
  const stepSize = lr / (1 - beta1 ** t);
  const sqrtBc2 = Math.sqrt(1 - beta2 ** t);
  for (const p of spec.params) {
    const decay = p.decay ? 1 - lr * weightDecay : 1;
    const end = p.offset + p.size;
    for (let i = p.offset; i < end; i++) {
      const g = grads[i] * gradScale;
      const mi = beta1 * m[i] + (1 - beta1) * g;
      const vi = beta2 * v[i] + (1 - beta2) * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i] * decay - stepSize * (mi / (Math.sqrt(vi) / sqrtBc2 + eps));
    }
  }
}
