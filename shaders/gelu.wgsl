// GELU with GPT-2's tanh approximation (PyTorch's approximate='tanh'):
// gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

override N: u32 = 1;
override WG: u32 = 256;
override ACCUMULATE: bool = true;  // backward: dinp += (true) or dinp = (false: a fresh gradient, no zero-fill needed)

const SCALE: f32 = 0.7978845608028654;  // sqrt(2/pi)
const CUBE: f32 = 0.044715;

fn flat_index(wid: vec3u, nwg: vec3u, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * WG + lid;
}

// tanh of the GELU argument. Clamped: some backends build tanh from exp and return
// inf/inf = NaN for large arguments; tanh(+-15) is +-1 in f32 anyway.
fn gelu_tanh(x: f32) -> f32 {
  return tanh(clamp(SCALE * (x + CUBE * x * x * x), -15.0, 15.0));
}

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> inp: array<f32>;

// out and inp are (N) (N = B*T*4C). out = gelu(inp). Forward saves nothing.
@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < N) {
    let x = inp[i];
    out[i] = 0.5 * x * (1.0 + gelu_tanh(x));
  }
}

@group(0) @binding(0) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(1) var<storage, read> binp: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;

// dinp, inp and dout are (N). dinp += gelu'(inp) * dout (dinp = ... without ACCUMULATE).
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = flat_index(wid, nwg, lid);
  if (i < N) {
    let x = binp[i];
    let th = gelu_tanh(x);
    // sech^2 = 1 - tanh^2 (finite for every x, unlike 1/cosh^2)
    let local = 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * SCALE * (1.0 + 3.0 * CUBE * x * x);
    var d = local * dout[i];
    if (ACCUMULATE) {
      d += dinp[i];
    }
    dinp[i] = d;
  }
}
