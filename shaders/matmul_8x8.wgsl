// Matrix products with 8x8 register blocks (128x128 tiles): the same products as the
// 4x4 kernel of matmul.wgsl (its header says what they compute and how split-K works),
// for large outputs. The declarations and tile loaders are shared: matmul_tiles.wgsl.

// #include matmul_tiles
// #include gelu

// ---- 8x8 register blocks: 128x128 tiles (published fast WGSL / CUDA SGEMM layout) ----
// A WG_X x WG_Y workgroup computes an (8 WG_Y) x (8 WG_X) tile of out; invocation (tx, ty)
// holds rows 4ty..4ty+3 and 4(WG_Y+ty)..+3, columns 4tx..4tx+3 and 4(WG_X+tx)..+3, as 16
// vec4s in registers (acc8[2r + h]: block row r, column half h). Splitting each block in
// two halves a tile apart makes one warp's vec4 reads of a workgroup tile consecutive.
// Set BLOCK = 8 and COPIES = 2. K is walked TILE_K at a time through two copies
// (ping-pong) of each workgroup tile: every invocation issues the global loads of step
// s+1 into registers (next_a, next_b), multiplies step s out of one copy, then writes
// step s+1 into the other copy; one barrier per step. The load items of a K step (see
// next_a) are at most two per invocation.
// Every element of out is still summed by one invocation in k order (bit-identical runs).

var<private> acc8: array<vec4f, 16>;
// The next K step's slots (matmul_tiles.wgsl), held in registers between fetch8 and
// stash8: slots lid and lid + WG_X * WG_Y (a K step has TILE_K * 2 * WG_Y slots of A,
// 1x or 2x the invocations, and TILE_K * 2 * WG_X of B).
var<private> next_a: array<vec4f, 2>;
var<private> next_b: array<vec4f, 2>;

fn fetch8(m0: u32, n0: u32, k0: u32, k_end: u32, lid: u32) {
  let t = WG_X * WG_Y;
  next_a[0] = fetch_a(lid, m0, k0, k_end, 2u * WG_Y);
  if (TILE_K * 2u * WG_Y > t) {
    next_a[1] = fetch_a(lid + t, m0, k0, k_end, 2u * WG_Y);
  }
  next_b[0] = fetch_b(lid, n0, k0, k_end, 2u * WG_X);
  if (TILE_K * 2u * WG_X > t) {
    next_b[1] = fetch_b(lid + t, n0, k0, k_end, 2u * WG_X);
  }
}

// Writes the fetched K step into copy c of both workgroup tiles.
fn stash8(c: u32, lid: u32) {
  let t = WG_X * WG_Y;
  let ba = c * TILE_K * 2u * WG_Y;
  let bb = c * TILE_K * 2u * WG_X;
  tileA[at_a(ba, lid, 2u * WG_Y)] = next_a[0];
  if (TILE_K * 2u * WG_Y > t) {
    tileA[at_a(ba, lid + t, 2u * WG_Y)] = next_a[1];
  }
  tileB[at_b(bb, lid, 2u * WG_X)] = next_b[0];
  if (TILE_K * 2u * WG_X > t) {
    tileB[at_b(bb, lid + t, 2u * WG_X)] = next_b[1];
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
// As matmul (matmul.wgsl) with 8x8 blocks. Grid: (ceil(N / 8WG_X), ceil(M / 8WG_Y), SPLITS).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_8x8(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 8u;
  let n0 = wid.x * WG_X * 8u;
  let kr = k_range(wid.z);
  fetch8(m0, n0, kr.x, kr.y, lid);
  stash8(0u, lid);
  workgroupBarrier();
  var c = 0u;
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    let more = k0 + TILE_K < kr.y;
    if (more) {
      fetch8(m0, n0, k0 + TILE_K, kr.y, lid);
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
