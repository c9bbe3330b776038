// Matrix products for the linear layers, the logits and their gradients:
//   out (M,N) = op(A) @ op(B) (+ bias), or out += ... with ACCUMULATE,
// where op(A) is (M,K), stored (M,K) or, with TRANS_A, (K,M); op(B) is (K,N), stored
// (K,N) or, with TRANS_B, (N,K). The transposes live in the tile loaders, so every
// caller (dinp = dout @ W^T, dW = inp^T @ dout, logits = x @ wte^T) runs one kernel.
//
// Tiling (TF.js / ONNX Runtime Web style): a WG_X x WG_Y workgroup computes a
// (4*WG_Y) x (4*WG_X) tile of out, each invocation a 4x4 block held in registers as
// four vec4 rows. K is walked TILE_K at a time through workgroup memory, both tiles
// stored k-major as vec4s so the inner loop reads one vec4 of A and one of B per k.
// Every element of out is summed by one invocation in a fixed k order: bit-identical
// run to run.
//
// Global loads are vec4 where the operand's contiguous dimension is a multiple of 4
// (entry points *_a4_* / *_b4), scalar otherwise (*_a1_* / *_b1); bindings 1 and 2 are
// declared both ways and each entry point touches one of them.
//
// Split-K (weight gradients: small M,N, K = B*T): grid z picks a K range of K_CHUNK;
// each layer writes its partial product to out + z*M*N (scratch), and
// matmul_splitk_reduce adds the layers in z order.

override M: u32 = 1;
override N: u32 = 1;
override K: u32 = 1;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
override HAS_BIAS: bool = false;
override WG_X: u32 = 16;     // invocations along N (4 columns each)
override WG_Y: u32 = 16;     // invocations along M (4 rows each)
override TILE_K: u32 = 16;   // K step held in workgroup memory (a multiple of 4)
override K_CHUNK: u32 = 0;   // split-K: K range per grid layer z (a multiple of TILE_K); 0: all of K
override SPLITS: u32 = 1;    // split-K reduce: number of partial products
override ROW_CHUNK: u32 = 1; // bias gradient: rows summed per partial

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

var<workgroup> tileA: array<vec4f, TILE_K * WG_Y>;  // [k][m / 4]
var<workgroup> tileB: array<vec4f, TILE_K * WG_X>;  // [k][n / 4]
var<private> acc: array<vec4f, 4>;                   // this invocation's 4x4 block, by row

// ---- tile loaders ----
// A tile slot q holds 4 elements consecutive along the operand's contiguous dimension.
// Untransposed A (M,K): slot q = (row m, k group); transposed A (K,M): slot q = (k, m group).

fn put_a(q: u32, v: vec4f) {
  if (TRANS_A) {
    tileA[q] = v;  // already 4 consecutive m at one k
  } else {
    let ml = q / (TILE_K / 4u);
    let kl = 4u * (q % (TILE_K / 4u));
    let i = kl * WG_Y + ml / 4u;
    let c = ml & 3u;
    tileA[i][c] = v.x;
    tileA[i + WG_Y][c] = v.y;
    tileA[i + 2u * WG_Y][c] = v.z;
    tileA[i + 3u * WG_Y][c] = v.w;
  }
}

// (m, k) of the first element in A tile slot q.
fn slot_a(q: u32, m0: u32, k0: u32) -> vec2u {
  if (TRANS_A) {
    return vec2u(m0 + 4u * (q % WG_Y), k0 + q / WG_Y);
  }
  return vec2u(m0 + q / (TILE_K / 4u), k0 + 4u * (q % (TILE_K / 4u)));
}

fn a_at(m: u32, k: u32, k_end: u32) -> f32 {
  if (m >= M || k >= k_end) {
    return 0.0;
  }
  if (TRANS_A) {
    return a1[k * M + m];
  }
  return a1[m * K + k];
}

fn load_a1(m0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_Y; q += WG_X * WG_Y) {
    let p = slot_a(q, m0, k0);
    var v: vec4f;
    if (TRANS_A) {
      v = vec4f(a_at(p.x, p.y, k_end), a_at(p.x + 1u, p.y, k_end), a_at(p.x + 2u, p.y, k_end), a_at(p.x + 3u, p.y, k_end));
    } else {
      v = vec4f(a_at(p.x, p.y, k_end), a_at(p.x, p.y + 1u, k_end), a_at(p.x, p.y + 2u, k_end), a_at(p.x, p.y + 3u, k_end));
    }
    put_a(q, v);
  }
}

// Only when the contiguous dimension (K, or M when transposed) is a multiple of 4: a
// group of 4 is then wholly inside or wholly outside the matrix.
fn load_a4(m0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_Y; q += WG_X * WG_Y) {
    let p = slot_a(q, m0, k0);
    var v = vec4f(0.0);
    if (p.x < M && p.y < k_end) {
      if (TRANS_A) {
        v = a4[(p.y * M + p.x) / 4u];
      } else {
        v = a4[(p.x * K + p.y) / 4u];
      }
    }
    put_a(q, v);
  }
}

// Untransposed B (K,N): slot q = (k, n group); transposed B (N,K): slot q = (column n, k group).
fn put_b(q: u32, v: vec4f) {
  if (!TRANS_B) {
    tileB[q] = v;
  } else {
    let nl = q / (TILE_K / 4u);
    let kl = 4u * (q % (TILE_K / 4u));
    let i = kl * WG_X + nl / 4u;
    let c = nl & 3u;
    tileB[i][c] = v.x;
    tileB[i + WG_X][c] = v.y;
    tileB[i + 2u * WG_X][c] = v.z;
    tileB[i + 3u * WG_X][c] = v.w;
  }
}

// (k, n) of the first element in B tile slot q.
fn slot_b(q: u32, n0: u32, k0: u32) -> vec2u {
  if (!TRANS_B) {
    return vec2u(k0 + q / WG_X, n0 + 4u * (q % WG_X));
  }
  return vec2u(k0 + 4u * (q % (TILE_K / 4u)), n0 + q / (TILE_K / 4u));
}

fn b_at(k: u32, n: u32, k_end: u32) -> f32 {
  if (n >= N || k >= k_end) {
    return 0.0;
  }
  if (TRANS_B) {
    return b1[n * K + k];
  }
  return b1[k * N + n];
}

fn load_b1(n0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_X; q += WG_X * WG_Y) {
    let p = slot_b(q, n0, k0);
    var v: vec4f;
    if (!TRANS_B) {
      v = vec4f(b_at(p.x, p.y, k_end), b_at(p.x, p.y + 1u, k_end), b_at(p.x, p.y + 2u, k_end), b_at(p.x, p.y + 3u, k_end));
    } else {
      v = vec4f(b_at(p.x, p.y, k_end), b_at(p.x + 1u, p.y, k_end), b_at(p.x + 2u, p.y, k_end), b_at(p.x + 3u, p.y, k_end));
    }
    put_b(q, v);
  }
}

// Only when the contiguous dimension (N, or K when transposed) is a multiple of 4.
fn load_b4(n0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_X; q += WG_X * WG_Y) {
    let p = slot_b(q, n0, k0);
    var v = vec4f(0.0);
    if (p.y < N && p.x < k_end) {
      if (TRANS_B) {
        v = b4[(p.y * K + p.x) / 4u];
      } else {
        v = b4[(p.x * N + p.y) / 4u];
      }
    }
    put_b(q, v);
  }
}

// ---- the shared body of the four tiled entry points ----

fn multiply_tiles(tx: u32, ty: u32) {
  for (var kk = 0u; kk < TILE_K; kk++) {
    let a = tileA[kk * WG_Y + ty];
    let b = tileB[kk * WG_X + tx];
    acc[0] = fma(vec4f(a.x), b, acc[0]);
    acc[1] = fma(vec4f(a.y), b, acc[1]);
    acc[2] = fma(vec4f(a.z), b, acc[2]);
    acc[3] = fma(vec4f(a.w), b, acc[3]);
  }
}

// K range [x, y) of grid layer z.
fn k_range(z: u32) -> vec2u {
  if (K_CHUNK == 0u) {
    return vec2u(0u, K);
  }
  return vec2u(z * K_CHUNK, min(K, (z + 1u) * K_CHUNK));
}

fn store_tile(m0: u32, n0: u32, z: u32) {
  let base = z * M * N;  // split-K layer z of the scratch; 0 otherwise
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + i;
    if (m >= M) {
      return;
    }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (n < N) {
        var v = acc[i][j];
        if (HAS_BIAS) {
          v += bias[n];
        }
        let o = base + m * N + n;
        if (ACCUMULATE) {
          v = out[o] + v;
        }
        out[o] = v;
      }
    }
  }
}

// out is (M,N), or (SPLITS,M,N) partials with K_CHUNK; A (M,K) or (K,M); B (K,N) or (N,K); bias (N).
// Grid: (ceil(N / 4WG_X), ceil(M / 4WG_Y), SPLITS).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_a1_b1(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 4u;
  let n0 = wid.x * WG_X * 4u;
  let kr = k_range(wid.z);
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    load_a1(m0, k0, kr.y, lid);
    load_b1(n0, k0, kr.y, lid);
    workgroupBarrier();
    multiply_tiles(l.x, l.y);
    workgroupBarrier();
  }
  store_tile(m0 + 4u * l.y, n0 + 4u * l.x, wid.z);
}

// out (M,N) or (SPLITS,M,N); A (M,K) or (K,M); B (K,N) or (N,K); bias (N): as matmul_a1_b1,
// with vec4 loads of A (its contiguous dimension, K or M, is a multiple of 4).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_a4_b1(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 4u;
  let n0 = wid.x * WG_X * 4u;
  let kr = k_range(wid.z);
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    load_a4(m0, k0, kr.y, lid);
    load_b1(n0, k0, kr.y, lid);
    workgroupBarrier();
    multiply_tiles(l.x, l.y);
    workgroupBarrier();
  }
  store_tile(m0 + 4u * l.y, n0 + 4u * l.x, wid.z);
}

// out (M,N) or (SPLITS,M,N); A (M,K) or (K,M); B (K,N) or (N,K); bias (N): as matmul_a1_b1,
// with vec4 loads of B (its contiguous dimension, N or K, is a multiple of 4).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_a1_b4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 4u;
  let n0 = wid.x * WG_X * 4u;
  let kr = k_range(wid.z);
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    load_a1(m0, k0, kr.y, lid);
    load_b4(n0, k0, kr.y, lid);
    workgroupBarrier();
    multiply_tiles(l.x, l.y);
    workgroupBarrier();
  }
  store_tile(m0 + 4u * l.y, n0 + 4u * l.x, wid.z);
}

// out (M,N) or (SPLITS,M,N); A (M,K) or (K,M); B (K,N) or (N,K); bias (N): as matmul_a1_b1,
// with vec4 loads of both operands.
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_a4_b4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 4u;
  let n0 = wid.x * WG_X * 4u;
  let kr = k_range(wid.z);
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    load_a4(m0, k0, kr.y, lid);
    load_b4(n0, k0, kr.y, lid);
    workgroupBarrier();
    multiply_tiles(l.x, l.y);
    workgroupBarrier();
  }
  store_tile(m0 + 4u * l.y, n0 + 4u * l.x, wid.z);
}

// ---- split-K reduce and bias gradient ----

@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<storage, read> rbias: array<f32>;

// out is (M,N); partials is (SPLITS,M,N); rbias is (N).
// out = sum over z (in order) of partials[z] (+ rbias) (+ out with ACCUMULATE).
// One invocation per element over a 2-D grid of WG_X*WG_Y-invocation workgroups.
@compute @workgroup_size(WG_X * WG_Y)
fn matmul_splitk_reduce(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let i = (wid.y * nwg.x + wid.x) * WG_X * WG_Y + lid;
  if (i >= M * N) {
    return;
  }
  var s = 0.0;
  for (var z = 0u; z < SPLITS; z++) {
    s += partials[z * M * N + i];
  }
  if (HAS_BIAS) {
    s += rbias[i % N];
  }
  if (ACCUMULATE) {
    s = out[i] + s;
  }
  out[i] = s;
}

// out is (ceil(M / ROW_CHUNK), N) column sums; A (bound as a1) is (M,N), e.g. dout.
// out[r, n] = sum of A[m, n] over rows m of chunk r, in row order (+ out with ACCUMULATE).
// Grid: (ceil(N / (WG_X*WG_Y)), ceil(M / ROW_CHUNK)).
@compute @workgroup_size(WG_X * WG_Y)
fn matmul_colsum(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let n = wid.x * WG_X * WG_Y + lid;
  if (n >= N) {
    return;
  }
  let r = wid.y;
  let m_end = min(M, (r + 1u) * ROW_CHUNK);
  var s = 0.0;
  for (var m = r * ROW_CHUNK; m < m_end; m++) {
    s += a1[m * N + n];
  }
  let o = r * N + n;
  if (ACCUMULATE) {
    s = out[o] + s;
  }
  out[o] = s;
}

// out (M,N) = op(A) @ op(B) (+ bias) (+ out with ACCUMULATE); one invocation per element
// with no tiling: the baseline the benchmark measures the tiled kernels against.
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_naive(@builtin(global_invocation_id) g: vec3u) {
  let n = g.x;
  let m = g.y;
  if (m >= M || n >= N) {
    return;
  }
  var s = 0.0;
  for (var k = 0u; k < K; k++) {
    var a: f32;
    var b: f32;
    if (TRANS_A) { a = a1[k * M + m]; } else { a = a1[m * K + k]; }
    if (TRANS_B) { b = b1[n * K + k]; } else { b = b1[k * N + n]; }
    s = fma(a, b, s);
  }
  if (HAS_BIAS) {
    s += bias[n];
  }
  let o = m * N + n;
  if (ACCUMULATE) {
    s = out[o] + s;
  }
  out[o] = s;
}
