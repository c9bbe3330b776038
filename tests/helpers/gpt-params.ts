// Parameters for gradient tests of the whole reference GPT.
import { modelSpec, type ModelConfig } from '../../src/core/model-spec.ts';
import { Rng } from '../../src/core/rng.ts';

/**
 * Parameters far from GPT-2's init (std 0.02 weights, LayerNorm 1/0, zero biases) so that
 * every term of every gradient is large enough to be seen.
 */
export function testParams(model: ModelConfig, seed: number): Float64Array {
  const spec = modelSpec(model);
  const rng = new Rng(seed);
  const p = new Float64Array(spec.numParams);
  for (const s of spec.params) {
    for (let i = s.offset; i < s.offset + s.size; i++) {
      const r = rng.normal();
      p[i] = s.role === 'ln_weight' ? 1 + 0.3 * r : s.role === 'bias' || s.role === 'ln_bias' ? 0.2 * r : 0.4 * r;
    }
  }
  return p;
}
