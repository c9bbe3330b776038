// The part of the tiled matrix products that both kernel families share: the override
// constants, the bindings, the workgroup tiles, the tile loaders (transposes included),
// the split-K range and the bounds-checked store. Not a kernel of its own: matmul.wgsl
// (4x4 blocks) and matmul_8x8.wgsl (8x8 blocks) take it in with `// #include
// matmul_tiles` (src/backends/webgpu/shader-variants.ts). What the products compute,
// how the operands are laid out and how split-K works: matmul.wgsl's header.
//
// Switches (set per kernel by ops/matmul.ts): a4 reads A as vec4s, b4 reads B as vec4s.
// Only where the operand's contiguous dimension (K or M for A, N or K for B) is a
// multiple of 4, so a group of 4 is wholly inside or wholly outside the matrix; scalar
// loads otherwise. The binding's type changes with it, hence a switch, not a constant.
// #switch a4 b4

override M: u32 = 1;
override N: u32 = 1;
override K: u32 = 1;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
override HAS_BIAS: bool = false;
override WG_X: u32 = 16;     // invocations along N (BLOCK columns each)
override WG_Y: u32 = 16;     // invocations along M (BLOCK rows each)
override TILE_K: u32 = 16;   // K step held in workgroup memory (a multiple of 4)
override BLOCK: u32 = 4;     // outputs per invocation along M and along N: 4 (matmul), 8 (matmul_8x8)
override COPIES: u32 = 1;    // copies of each workgroup tile: 1, or 2 (matmul_8x8: ping-pong)
override K_CHUNK: u32 = 0;   // split-K: K range per grid layer z (a multiple of TILE_K); 0: all of K
override GELU_A: bool = false;     // A is read as gelu(A) (c_proj's input: gelu.wgsl)
override GELU_GRAD: bool = false;  // the result (+ bias) is multiplied by gelu'(gelu_in) before it is stored

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
// #if a4
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
// #else
@group(0) @binding(1) var<storage, read> a1: array<f32>;
// #endif
// #if b4
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
// #else
@group(0) @binding(2) var<storage, read> b1: array<f32>;
// #endif
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> gelu_in: array<f32>;  // (M,N): the pre-activation whose gelu' GELU_GRAD applies

// Both workgroup tiles are k-major rows of vec4s: BLOCK / 4 * WG_Y vec4s (the tile's M
// edge / 4) per k for A, BLOCK / 4 * WG_X for B; COPIES of them (the 8x8 kernels ping-pong
// between two). The 4x4 kernels leave BLOCK and COPIES at 4 and 1.
var<workgroup> tileA: array<vec4f, COPIES * TILE_K * (BLOCK / 4u) * WG_Y>;  // [copy][k][m / 4]
var<workgroup> tileB: array<vec4f, COPIES * TILE_K * (BLOCK / 4u) * WG_X>;  // [copy][k][n / 4]

// ---- tile loaders ----
// A tile slot q is one vec4 of a workgroup tile: 4 consecutive m (A) or n (B) at one k.
// Transposed A (K,M) and untransposed B (K,N) hold those 4 next to each other: one vec4
// load (or 4 scalars where the binding is scalar). Untransposed A (M,K) and transposed B
// (N,K) hold them in 4 rows: a gather (below).
// w is the tile's width in vec4s along M (A) or N (B); base the first vec4 of its copy.
//
// Workgroup vectors are only ever stored whole. A store to one component of a vector
// "may access all of the memory locations associated with that vector" (WGSL spec,
// "Component Reference from Vector Memory View"), so invocations storing different
// components of one vec4 race: Metal's compiler may make each such store a
// read-modify-write of the whole vector (gpuweb/gpuweb#2112). SwiftShader and Vulkan on
// NVIDIA store the components apart and never show it; tests/unit/
// wgsl-workgroup-stores.test.ts checks every shader for such stores instead.
//
// So every invocation stores whole vec4s of the tile, one per slot, and a slot that lies
// across rows is gathered (4 scalar loads from 4 rows at one k) rather than loaded along
// its row and scattered into 4 vec4s' components, as these loaders did until 2026-12.
// Gathered slots go k fastest across invocations, so neighbouring invocations read
// neighbouring addresses of a row (coalesced on a GPU). On SwiftShader this costs
// nothing measurable against the component stores (docs/PERFORMANCE.md); a 4x4 block
// per invocation, transposed in registers, measured 15-50% slower there (a quarter of
// the invocations loading).

// Whether A's / B's slots are gathers across 4 rows.
fn gather_a() -> bool { return !TRANS_A; }
fn gather_b() -> bool { return TRANS_B; }

// Where A's / B's slot q goes in a tile w vec4s wide (base: the copy's first vec4).
fn at_a(base: u32, q: u32, w: u32) -> u32 {
  if (gather_a()) {
    return base + (q % TILE_K) * w + q / TILE_K;
  }
  return base + q;
}

fn at_b(base: u32, q: u32, w: u32) -> u32 {
  if (gather_b()) {
    return base + (q % TILE_K) * w + q / TILE_K;
  }
  return base + q;
}

// (m, k) of the first element in A tile slot q.
fn slot_a(q: u32, m0: u32, k0: u32, w: u32) -> vec2u {
  if (TRANS_A) {
    return vec2u(m0 + 4u * (q % w), k0 + q / w);
  }
  return vec2u(m0 + 4u * (q / TILE_K), k0 + q % TILE_K);  // a gather: rows m..m+3 at k
}

// A tile slot q (zeros outside the matrix and past k_end, which gelu keeps zero).
fn fetch_a(q: u32, m0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let v = fetch_a_raw(q, m0, k0, k_end, w);
  if (GELU_A) {
    return gelu4(v);
  }
  return v;
}

fn fetch_a_raw(q: u32, m0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let p = slot_a(q, m0, k0, w);
  if (gather_a()) {
    return vec4f(a_at(p.x, p.y, k_end), a_at(p.x + 1u, p.y, k_end), a_at(p.x + 2u, p.y, k_end), a_at(p.x + 3u, p.y, k_end));
  }
// #if a4
  if (p.x < M && p.y < k_end) {
    return a4[(p.y * M + p.x) / 4u];
  }
  return vec4f(0.0);
// #else
  return vec4f(a_at(p.x, p.y, k_end), a_at(p.x + 1u, p.y, k_end), a_at(p.x + 2u, p.y, k_end), a_at(p.x + 3u, p.y, k_end));
// #endif
}

fn a_at(m: u32, k: u32, k_end: u32) -> f32 {
  if (m >= M || k >= k_end) {
    return 0.0;
  }
  var i = m * K + k;
  if (TRANS_A) {
    i = k * M + m;
  }
// #if a4
  return a4[i / 4u][i & 3u];
// #else
  return a1[i];
// #endif
}

fn load_a(m0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_Y; q += WG_X * WG_Y) {
    tileA[at_a(0u, q, WG_Y)] = fetch_a(q, m0, k0, k_end, WG_Y);
  }
}

// Untransposed B (K,N): slot q = (k, n group); transposed B (N,K): a gather, columns n..n+3 at k.
// (k, n) of the first element in B tile slot q.
fn slot_b(q: u32, n0: u32, k0: u32, w: u32) -> vec2u {
  if (!TRANS_B) {
    return vec2u(k0 + q / w, n0 + 4u * (q % w));
  }
  return vec2u(k0 + q % TILE_K, n0 + 4u * (q / TILE_K));  // a gather: columns n..n+3 at k
}

// B tile slot q (zeros outside the matrix and past k_end).
fn fetch_b(q: u32, n0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let p = slot_b(q, n0, k0, w);
  // Either way 4 consecutive n at one k: along the row of B, or gathered from 4 rows of B^T.
  if (gather_b()) {
    return vec4f(b_at(p.x, p.y, k_end), b_at(p.x, p.y + 1u, k_end), b_at(p.x, p.y + 2u, k_end), b_at(p.x, p.y + 3u, k_end));
  }
// #if b4
  if (p.y < N && p.x < k_end) {
    return b4[(p.x * N + p.y) / 4u];
  }
  return vec4f(0.0);
// #else
  return vec4f(b_at(p.x, p.y, k_end), b_at(p.x, p.y + 1u, k_end), b_at(p.x, p.y + 2u, k_end), b_at(p.x, p.y + 3u, k_end));
// #endif
}

fn b_at(k: u32, n: u32, k_end: u32) -> f32 {
  if (n >= N || k >= k_end) {
    return 0.0;
  }
  var i = k * N + n;
  if (TRANS_B) {
    i = n * K + k;
  }
// #if b4
  return b4[i / 4u][i & 3u];
// #else
  return b1[i];
// #endif
}

fn load_b(n0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_X; q += WG_X * WG_Y) {
    tileB[at_b(0u, q, WG_X)] = fetch_b(q, n0, k0, k_end, WG_X);
  }
}

// K range [x, y) of grid layer z.
fn k_range(z: u32) -> vec2u {
  if (K_CHUNK == 0u) {
    return vec2u(0u, K);
  }
  return vec2u(z * K_CHUNK, min(K, (z + 1u) * K_CHUNK));
}

// Row m, columns n..n+3 of out (those inside it) from v (+ bias) (times gelu'(gelu_in)
// with GELU_GRAD) (+ out with ACCUMULATE), in split-K layer z of the scratch (0 otherwise).
fn store4(z: u32, m: u32, n: u32, v: vec4f) {
  if (m >= M) {
    return;
  }
  let base = z * M * N;
  for (var j = 0u; j < 4u; j++) {
    let nj = n + j;
    if (nj < N) {
      var s = v[j];
      if (HAS_BIAS) {
        s += bias[nj];
      }
      if (GELU_GRAD) {
        s *= gelu_grad(gelu_in[m * N + nj]);
      }
      let o = base + m * N + nj;
      if (ACCUMULATE) {
        s = out[o] + s;
      }
      out[o] = s;
    }
  }
}
