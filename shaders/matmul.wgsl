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
// (switches a4 / b4, matmul_tiles.wgsl), scalar otherwise.
//
// The MLP's GELU lives here too (gelu.wgsl): GELU_A reads A as gelu(A), GELU_GRAD
// multiplies the result by gelu'(gelu_in) before it is stored.
//
// The 8x8 kernel (matmul_8x8: 128x128 tiles with 16x16 invocations, in
// matmul_8x8.wgsl) hold an 8x8 block per invocation and overlap the global loads of the
// next K step with the arithmetic of this one.
//
// Split-K (weight gradients: small M,N, K = B*T): grid z picks a K range of K_CHUNK;
// each layer writes its partial product to out + z*M*N (scratch), and
// matmul_splitk_reduce (matmul_sums.wgsl) adds the layers in z order. The untiled
// baseline the benchmark compares with is matmul_naive.wgsl.
//
// The declarations and tile loaders both families share are in matmul_tiles.wgsl; the
// 8x8 kernels are in matmul_8x8.wgsl.

// #include matmul_tiles
// #include gelu

var<private> acc: array<vec4f, 4>;                   // a 4x4 kernel's block, by row

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


fn store_tile(m0: u32, n0: u32, z: u32) {
  for (var i = 0u; i < 4u; i++) {
    store4(z, m0 + i, n0, acc[i]);
  }
}

// out is (M,N), or (SPLITS,M,N) partials with K_CHUNK; A (M,K) or (K,M); B (K,N) or (N,K); bias (N).
// Grid: (ceil(N / 4WG_X), ceil(M / 4WG_Y), SPLITS).
@compute @workgroup_size(WG_X, WG_Y)
fn matmul(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) l: vec3u, @builtin(local_invocation_index) lid: u32) {
  let m0 = wid.y * WG_Y * 4u;
  let n0 = wid.x * WG_X * 4u;
  let kr = k_range(wid.z);
  for (var k0 = kr.x; k0 < kr.y; k0 += TILE_K) {
    load_a(m0, k0, kr.y, lid);
    load_b(n0, k0, kr.y, lid);
    workgroupBarrier();
    multiply_tiles(l.x, l.y);
    workgroupBarrier();
  }
  store_tile(m0 + 4u * l.y, n0 + 4u * l.x, wid.z);
}
