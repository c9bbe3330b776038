// GELU with GPT-2's tanh approximation (PyTorch's approximate='tanh'), forward and
// backward: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
//
// No kernel of its own: the activation is folded into the matrix products on either
// side of it (DESIGN.md: activations into the loads and stores), which take this file
// in with `// #include gelu`:
// - forward: c_proj reads its input as gelu(fch) while loading its tiles (matmul's
//   GELU_A), so gelu(fch) is never written: one (B,T,4C) activation less per layer to
//   hold, and no pass over memory for it;
// - backward: c_proj's input gradient is stored already multiplied by gelu'(fch)
//   (GELU_GRAD), which is d(fch) itself; c_proj's weight gradient reads gelu(fch) through
//   GELU_A again (llm.c's recompute: one tanh per loaded element).

const GELU_SCALE: f32 = 0.7978845608028654;  // sqrt(2/pi)
const GELU_CUBE: f32 = 0.044715;

// tanh of the GELU argument. Clamped: some backends build tanh from exp and return
// inf/inf = NaN for large arguments; tanh(+-15) is +-1 in f32 anyway.
fn gelu_tanh(x: f32) -> f32 {
  return tanh(clamp(GELU_SCALE * (x + GELU_CUBE * x * x * x), -15.0, 15.0));
}

fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + gelu_tanh(x));
}

// d gelu(x) / dx, with sech^2 = 1 - tanh^2 (finite for every x, unlike 1/cosh^2).
fn gelu_grad(x: f32) -> f32 {
  let th = gelu_tanh(x);
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * GELU_SCALE * (1.0 + 3.0 * GELU_CUBE * x * x);
}

fn gelu4(v: vec4f) -> vec4f {
  return vec4f(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));
}
