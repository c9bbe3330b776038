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
// The 8x8 kernels (matmul_8x8_*: 128x128 tiles with 16x16 invocations; their own
// section below) hold an 8x8 block per invocation and overlap the global loads of the
// next K step with the arithmetic of this one.
//
// Split-K (weight gradients: small M,N, K = B*T): grid z picks a K range of K_CHUNK;
// each layer writes its partial product to out + z*M*N (scratch), and
// matmul_splitk_reduce (matmul_sums.wgsl) adds the layers in z order. The untiled
// baseline the benchmark compares with is matmul_naive.wgsl.

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
override BLOCK: u32 = 4;     // outputs per invocation along M and along N: 4 (matmul_*), 8 (matmul_8x8_*)
override COPIES: u32 = 1;    // copies of each workgroup tile: 1, or 2 (matmul_8x8_*: ping-pong)
override K_CHUNK: u32 = 0;   // split-K: K range per grid layer z (a multiple of TILE_K); 0: all of K

@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> a1: array<f32>;
@group(0) @binding(1) var<storage, read> a4: array<vec4f>;
@group(0) @binding(2) var<storage, read> b1: array<f32>;
@group(0) @binding(2) var<storage, read> b4: array<vec4f>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

// Both workgroup tiles are k-major rows of vec4s: BLOCK / 4 * WG_Y vec4s (the tile's M
// edge / 4) per k for A, BLOCK / 4 * WG_X for B; COPIES of them (the 8x8 kernels ping-pong
// between two). The 4x4 kernels leave BLOCK and COPIES at 4 and 1.
var<workgroup> tileA: array<vec4f, COPIES * TILE_K * (BLOCK / 4u) * WG_Y>;  // [copy][k][m / 4]
var<workgroup> tileB: array<vec4f, COPIES * TILE_K * (BLOCK / 4u) * WG_X>;  // [copy][k][n / 4]
var<private> acc: array<vec4f, 4>;                   // a 4x4 kernel's block, by row

// ---- tile loaders ----
// A tile slot q holds 4 elements consecutive along the operand's contiguous dimension.
// Untransposed A (M,K): slot q = (row m, k group); transposed A (K,M): slot q = (k, m group).
// w is the tile's width in vec4s along M (A) or N (B); base the first vec4 of its copy.

fn put_a(base: u32, q: u32, v: vec4f, w: u32) {
  if (TRANS_A) {
    tileA[base + q] = v;  // already 4 consecutive m at one k
  } else {
    let ml = q / (TILE_K / 4u);
    let kl = 4u * (q % (TILE_K / 4u));
    let i = base + kl * w + ml / 4u;
    let c = ml & 3u;
    tileA[i][c] = v.x;
    tileA[i + w][c] = v.y;
    tileA[i + 2u * w][c] = v.z;
    tileA[i + 3u * w][c] = v.w;
  }
}

// (m, k) of the first element in A tile slot q.
fn slot_a(q: u32, m0: u32, k0: u32, w: u32) -> vec2u {
  if (TRANS_A) {
    return vec2u(m0 + 4u * (q % w), k0 + q / w);
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

// A tile slot q (zeros outside the matrix and past k_end), from scalar loads.
fn fetch_a1(q: u32, m0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let p = slot_a(q, m0, k0, w);
  if (TRANS_A) {
    return vec4f(a_at(p.x, p.y, k_end), a_at(p.x + 1u, p.y, k_end), a_at(p.x + 2u, p.y, k_end), a_at(p.x + 3u, p.y, k_end));
  }
  return vec4f(a_at(p.x, p.y, k_end), a_at(p.x, p.y + 1u, k_end), a_at(p.x, p.y + 2u, k_end), a_at(p.x, p.y + 3u, k_end));
}

// As fetch_a1 with one vec4 load: only when the contiguous dimension (K, or M when
// transposed) is a multiple of 4, so a group of 4 is wholly inside or wholly outside.
fn fetch_a4(q: u32, m0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let p = slot_a(q, m0, k0, w);
  if (p.x < M && p.y < k_end) {
    if (TRANS_A) {
      return a4[(p.y * M + p.x) / 4u];
    }
    return a4[(p.x * K + p.y) / 4u];
  }
  return vec4f(0.0);
}

fn load_a1(m0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_Y; q += WG_X * WG_Y) {
    put_a(0u, q, fetch_a1(q, m0, k0, k_end, WG_Y), WG_Y);
  }
}

fn load_a4(m0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_Y; q += WG_X * WG_Y) {
    put_a(0u, q, fetch_a4(q, m0, k0, k_end, WG_Y), WG_Y);
  }
}

// Untransposed B (K,N): slot q = (k, n group); transposed B (N,K): slot q = (column n, k group).
fn put_b(base: u32, q: u32, v: vec4f, w: u32) {
  if (!TRANS_B) {
    tileB[base + q] = v;
  } else {
    let nl = q / (TILE_K / 4u);
    let kl = 4u * (q % (TILE_K / 4u));
    let i = base + kl * w + nl / 4u;
    let c = nl & 3u;
    tileB[i][c] = v.x;
    tileB[i + w][c] = v.y;
    tileB[i + 2u * w][c] = v.z;
    tileB[i + 3u * w][c] = v.w;
  }
}

// (k, n) of the first element in B tile slot q.
fn slot_b(q: u32, n0: u32, k0: u32, w: u32) -> vec2u {
  if (!TRANS_B) {
    return vec2u(k0 + q / w, n0 + 4u * (q % w));
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

fn fetch_b1(q: u32, n0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let p = slot_b(q, n0, k0, w);
  if (!TRANS_B) {
    return vec4f(b_at(p.x, p.y, k_end), b_at(p.x, p.y + 1u, k_end), b_at(p.x, p.y + 2u, k_end), b_at(p.x, p.y + 3u, k_end));
  }
  return vec4f(b_at(p.x, p.y, k_end), b_at(p.x + 1u, p.y, k_end), b_at(p.x + 2u, p.y, k_end), b_at(p.x + 3u, p.y, k_end));
}

// Only when the contiguous dimension (N, or K when transposed) is a multiple of 4.
fn fetch_b4(q: u32, n0: u32, k0: u32, k_end: u32, w: u32) -> vec4f {
  let p = slot_b(q, n0, k0, w);
  if (p.y < N && p.x < k_end) {
    if (TRANS_B) {
      return b4[(p.y * K + p.x) / 4u];
    }
    return b4[(p.x * N + p.y) / 4u];
  }
  return vec4f(0.0);
}

fn load_b1(n0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_X; q += WG_X * WG_Y) {
    put_b(0u, q, fetch_b1(q, n0, k0, k_end, WG_X), WG_X);
  }
}

fn load_b4(n0: u32, k0: u32, k_end: u32, lid: u32) {
  for (var q = lid; q < TILE_K * WG_X; q += WG_X * WG_Y) {
    put_b(0u, q, fetch_b4(q, n0, k0, k_end, WG_X), WG_X);
  }
}

// ---- the shared body of the tiled entry points ----

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

// Row m, columns n..n+3 of out (those inside it) from v (+ bias) (+ out with
// ACCUMULATE), in split-K layer z of the scratch (0 otherwise).
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
      let o = base + m * N + nj;
      if (ACCUMULATE) {
        s = out[o] + s;
      }
      out[o] = s;
    }
  }
}

fn store_tile(m0: u32, n0: u32, z: u32) {
  for (var i = 0u; i < 4u; i++) {
    store4(z, m0 + i, n0, acc[i]);
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

// ---- 8x8 register blocks: 128x128 tiles (published fast WGSL / CUDA SGEMM layout) ----
// A WG_X x WG_Y workgroup computes an (8 WG_Y) x (8 WG_X) tile of out; invocation (tx, ty)
// holds rows 4ty..4ty+3 and 4(WG_Y+ty)..+3, columns 4tx..4tx+3 and 4(WG_X+tx)..+3, as 16
// vec4s in registers (acc8[2r + h]: block row r, column half h). Splitting each block in
// two halves a tile apart makes one warp's vec4 reads of a workgroup tile consecutive.
// Set BLOCK = 8 and COPIES = 2. K is walked TILE_K at a time through two copies
// (ping-pong) of each workgroup tile: every invocation issues the global loads of step
// s+1 into registers (next_a, next_b), multiplies step s out of one copy, then writes
// step s+1 into the other copy; one barrier per step. The slots of a K step are one or
// two per invocation: TILE_K * 2 * WG_Y and TILE_K * 2 * WG_X are 1x or 2x WG_X * WG_Y.
// Every element of out is still summed by one invocation in k order (bit-identical runs).

var<private> acc8: array<vec4f, 16>;
var<private> next_a: array<vec4f, 2>;
var<private> next_b: array<vec4f, 2>;

fn fetch8_a1(m0: u32, k0: u32, k_end: u32, lid: u32) {
  next_a[0] = fetch_a1(lid, m0, k0, k_end, 2u * WG_Y);
  if (TILE_K * 2u * WG_Y > WG_X * WG_Y) {
    next_a[1] = fetch_a1(lid + WG_X * WG_Y, m0, k0, k_end, 2u * WG_Y);
  }
}

fn fetch8_a4(m0: u32, k0: u32, k_end: u32, lid: u32) {
  next_a[0] = fetch_a4(lid, m0, k0, k_end, 2u * WG_Y);
  if (TILE_K * 2u * WG_Y > WG_X * WG_Y) {
    next_a[1] = fetch_a4(lid + WG_X * WG_Y, m0, k0, k_end, 2u * WG_Y);
  }
}

fn fetch8_b1(n0: u32, k0: u32, k_end: u32, lid: u32) {
  next_b[0] = fetch_b1(lid, n0, k0, k_end, 2u * WG_X);
  if (TILE_K * 2u * WG_X > WG_X * WG_Y) {
    next_b[1] = fetch_b1(lid + WG_X * WG_Y, n0, k0, k_end, 2u * WG_X);
  }
}

fn fetch8_b4(n0: u32, k0: u32, k_end: u32, lid: u32) {
  next_b[0] = fetch_b4(lid, n0, k0, k_end, 2u * WG_X);
  if (TILE_K * 2u * WG_X > WG_X * WG_Y) {
    next_b[1] = fetch_b4(lid + WG_X * WG_Y, n0, k0, k_end, 2u * WG_X);
  }
}

// Writes the fetched K step into copy c of both workgroup tiles.
fn stash8(c: u32, lid: u32) {
  let t = WG_X * WG_Y;
  let ba = c * TILE_K * 2u * WG_Y;
  let bb = c * TILE_K * 2u * WG_X;
  put_a(ba, lid, next_a[0], 2u * WG_Y);
  if (TILE_K * 2u * WG_Y > t) {
    put_a(ba, lid + t, next_a[1], 2u * WG_Y);
  }
  put_b(bb, lid, next_b[0], 2u * WG_X);
  if (TILE_K * 2u * WG_X > t) {
    put_b(bb, lid + t, next_b[1], 2u * WG_X);
  }
}

// acc8 += this invocation's 8 rows of copy c of tileA times its 8 columns of tileB.
// Constant indices into acc8 only, so it can stay in registers.
fn multiply8(c: u32, tx: u32, ty: u32) {
  let wa = 2u * WG_Y;
  let wb = 2u * WG_X;
  var ia = c * TILE_K * wa + ty;
  var ib = c * TILE_K * wb + tx;
  for (var kk = 0u; kk < TILE_K; kk++) {
    let x0 = tileA[ia];
    let x1 = tileA[ia + WG_Y];
    let y0 = tileB[ib];
    let y1 = tileB[ib + WG_X];
    acc8[0] = fma(vec4f(x0.x), y0, acc8[0]);
    acc8[1] = fma(vec4f(x0.x), y1, acc8[1]);
    acc8[2] = fma(vec4f(x0.y), y0, acc8[2]);
    acc8[3] = fma(vec4f(x0.y), y1, acc8[3]);
    acc8[4] = fma(vec4f(x0.z), y0, acc8[4]);
    acc8[5] = fma(vec4f(x0.z), y1, acc8[5]);
    acc8[6] = fma(vec4f(x0.w), y0, acc8[6]);
    acc8[7] = fma(vec4f(x0.w), y1, acc8[7]);
    acc8[8] = fma(vec4f(x1.x), y0, acc8[8]);
    acc8[9] = fma(vec4f(x1.x), y1, acc8[9]);
    acc8[10] = fma(vec4f(x1.y), y0, acc8[10]);
    acc8[11] = fma(vec4f(x1.y), y1, acc8[11]);
    acc8[12] = fma(vec4f(x1.z), y0, acc8[12]);
    acc8[13] = fma(vec4f(x1.z), y1, acc8[13]);
    acc8[14] = fma(vec4f(x1.w), y0, acc8[14]);
    acc8[15] = fma(vec4f(x1.w), y1, acc8[15]);
    ia += wa;
    ib += wb;
  }
}

fn store8(m0: u32, n0: u32, tx: u32, ty: u32, z: u32) {
  let r0 = m0 + 4u * ty;
  let r1 = r0 + 4u * WG_Y;
  let c0 = n0 + 4u * tx;
  let c1 = c0 + 4u * WG_X;
  store4(z, r0, c0, acc8[0]);
  store4(z, r0, c1, acc8[1]);
  store4(z, r0 + 1u, c0, acc8[2]);
  store4(z, r0 + 1u, c1, acc8[3]);
  store4(z, r0 + 2u, c0, acc8[4]);
  store4(z, r0 + 2u, c1, acc8[5]);
  store4(z, r0 + 3u, c0, acc8[6]);
  store4(z, r0 + 3u, c1, acc8[7]);
  store4(z, r1, c0, acc8[8]);
  store4(z, r1, c1, acc8[9]);
  store4(z, r1 + 1u, c0, acc8[10]);
  store4(z, r1 + 1u, c1, acc8[11]);
  store4(z, r1 + 2u, c0, acc8[12]);
  store4(z, r1 + 2u, c1, acc8[13]);
  store4(z, r1 + 3u, c0, acc8[14]);
  store4(z, r1 + 3u, c1, acc8[15]);
}

// out is (M,N), or (SPLITS,M,N) partials with K_CHUNK; A (M,K) or (K,M); B (K,N) or (N,K); bias (N).
// As matmul_a1_b1 with 8x8 blocks. Grid: (ceil(N / 8WG_X), ceil(M / 8WG_Y), SPLITS).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_8x8_a1_b1(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 8u;
  let n0 = wid.x * WG_X * 8u;
  let kr = k_range(wid.z);
  fetch8_a1(m0, kr.x, kr.y, lid);
  fetch8_b1(n0, kr.x, kr.y, lid);
  stash8(0u, lid);
  workgroupBarrier();
  var c = 0u;
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    let more = k0 + TILE_K < kr.y;
    if (more) {
      fetch8_a1(m0, k0 + TILE_K, kr.y, lid);
      fetch8_b1(n0, k0 + TILE_K, kr.y, lid);
    }
    multiply8(c, l.x, l.y);
    if (more) {
      stash8(1u - c, lid);
    }
    workgroupBarrier();
    c = 1u - c;
  }
  store8(m0, n0, l.x, l.y, wid.z);
}

// out (M,N) or (SPLITS,M,N); A (M,K) or (K,M); B (K,N) or (N,K); bias (N): as matmul_8x8_a1_b1,
// with vec4 loads of A (its contiguous dimension, K or M, is a multiple of 4).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_8x8_a4_b1(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 8u;
  let n0 = wid.x * WG_X * 8u;
  let kr = k_range(wid.z);
  fetch8_a4(m0, kr.x, kr.y, lid);
  fetch8_b1(n0, kr.x, kr.y, lid);
  stash8(0u, lid);
  workgroupBarrier();
  var c = 0u;
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    let more = k0 + TILE_K < kr.y;
    if (more) {
      fetch8_a4(m0, k0 + TILE_K, kr.y, lid);
      fetch8_b1(n0, k0 + TILE_K, kr.y, lid);
    }
    multiply8(c, l.x, l.y);
    if (more) {
      stash8(1u - c, lid);
    }
    workgroupBarrier();
    c = 1u - c;
  }
  store8(m0, n0, l.x, l.y, wid.z);
}

// out (M,N) or (SPLITS,M,N); A (M,K) or (K,M); B (K,N) or (N,K); bias (N): as matmul_8x8_a1_b1,
// with vec4 loads of B (its contiguous dimension, N or K, is a multiple of 4).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_8x8_a1_b4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 8u;
  let n0 = wid.x * WG_X * 8u;
  let kr = k_range(wid.z);
  fetch8_a1(m0, kr.x, kr.y, lid);
  fetch8_b4(n0, kr.x, kr.y, lid);
  stash8(0u, lid);
  workgroupBarrier();
  var c = 0u;
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    let more = k0 + TILE_K < kr.y;
    if (more) {
      fetch8_a1(m0, k0 + TILE_K, kr.y, lid);
      fetch8_b4(n0, k0 + TILE_K, kr.y, lid);
    }
    multiply8(c, l.x, l.y);
    if (more) {
      stash8(1u - c, lid);
    }
    workgroupBarrier();
    c = 1u - c;
  }
  store8(m0, n0, l.x, l.y, wid.z);
}

// out (M,N) or (SPLITS,M,N); A (M,K) or (K,M); B (K,N) or (N,K); bias (N): as matmul_8x8_a1_b1,
// with vec4 loads of both operands.
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_8x8_a4_b4(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 8u;
  let n0 = wid.x * WG_X * 8u;
  let kr = k_range(wid.z);
  fetch8_a4(m0, kr.x, kr.y, lid);
  fetch8_b4(n0, kr.x, kr.y, lid);
  stash8(0u, lid);
  workgroupBarrier();
  var c = 0u;
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    let more = k0 + TILE_K < kr.y;
    if (more) {
      fetch8_a4(m0, k0 + TILE_K, kr.y, lid);
      fetch8_b4(n0, k0 + TILE_K, kr.y, lid);
    }
    multiply8(c, l.x, l.y);
    if (more) {
      stash8(1u - c, lid);
    }
    workgroupBarrier();
    c = 1u - c;
  }
  store8(m0, n0, l.x, l.y, wid.z);
}
