// Test entry points for kernels/layernorm.cu (tests/cuda/layernorm.test.ts, residual.test.ts).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {
namespace {

void expect_shape(int N, int C) {
  if (N < 1 || C < 1) throw std::invalid_argument("layernorm: N and C must be >= 1");
}

}  // namespace

// layernormForward
//   arrays: [0] out f32 (N*C), out (act)   [1] mean f32 (N), out   [2] rstd f32 (N), out
//           [3] inp f32 (N*C) (act)        [4] weight f32 (C)      [5] bias f32 (C)
//   nums:   [0] dtype, [1] N, [2] C
KILN_ENTRY(layernormForward) {
  const Dtype dt = args.dtype(0);
  const int N = args.integer(1), C = args.integer(2);
  expect_shape(N, C);
  const size_t NC = (size_t)N * C;
  expect_len(args, 0, NC, "layernormForward: out");
  expect_len(args, 1, N, "layernormForward: mean");
  expect_len(args, 2, N, "layernormForward: rstd");
  expect_len(args, 3, NC, "layernormForward: inp");
  expect_len(args, 4, C, "layernormForward: weight");
  expect_len(args, 5, C, "layernormForward: bias");
  ActArray d_out(dt, NC), d_inp(dt, NC, args.f32(3));
  DeviceArray<float> d_mean(N), d_rstd(N), d_w(C, args.f32(4)), d_b(C, args.f32(5));
  layernorm_forward(dt, d_out.get(), d_mean.get(), d_rstd.get(), d_inp.get(), d_w.get(), d_b.get(), N, C, 0);
  sync("layernormForward");
  d_out.download(args.f32(0));
  d_mean.download(args.f32(1));
  d_rstd.download(args.f32(2));
}

// fusedResidualLayernormForward: residual = a + b, out = LayerNorm(residual).
//   arrays: [0] residual f32 (N*C), out (act)   [1] out f32 (N*C), out (act)
//           [2] mean f32 (N), out               [3] rstd f32 (N), out
//           [4] a f32 (N*C) (act)  [5] b f32 (N*C) (act)  [6] weight f32 (C)  [7] bias f32 (C)
//   nums:   [0] dtype, [1] N, [2] C
KILN_ENTRY(fusedResidualLayernormForward) {
  const Dtype dt = args.dtype(0);
  const int N = args.integer(1), C = args.integer(2);
  expect_shape(N, C);
  const size_t NC = (size_t)N * C;
  expect_len(args, 0, NC, "fusedResidualLayernormForward: residual");
  expect_len(args, 1, NC, "fusedResidualLayernormForward: out");
  expect_len(args, 2, N, "fusedResidualLayernormForward: mean");
  expect_len(args, 3, N, "fusedResidualLayernormForward: rstd");
  expect_len(args, 4, NC, "fusedResidualLayernormForward: a");
  expect_len(args, 5, NC, "fusedResidualLayernormForward: b");
  expect_len(args, 6, C, "fusedResidualLayernormForward: weight");
  expect_len(args, 7, C, "fusedResidualLayernormForward: bias");
  ActArray d_res(dt, NC), d_out(dt, NC), d_a(dt, NC, args.f32(4)), d_b(dt, NC, args.f32(5));
  DeviceArray<float> d_mean(N), d_rstd(N), d_w(C, args.f32(6)), d_bias(C, args.f32(7));
  fused_residual_layernorm_forward(dt, d_res.get(), d_out.get(), d_mean.get(), d_rstd.get(), d_a.get(), d_b.get(), d_w.get(),
                                   d_bias.get(), N, C, 0);
  sync("fusedResidualLayernormForward");
  d_res.download(args.f32(0));
  d_out.download(args.f32(1));
  d_mean.download(args.f32(2));
  d_rstd.download(args.f32(3));
}

// layernormBackward (the reference's argument order)
//   arrays: [0] dinp f32 (N*C), in and out (act, accumulates)
//           [1] dweight f32 (C), in and out (accumulates)   [2] dbias f32 (C), in and out (accumulates)
//           [3] dout f32 (N*C) (act)   [4] inp f32 (N*C) (act)   [5] weight f32 (C)
//           [6] mean f32 (N)           [7] rstd f32 (N)
//   nums:   [0] dtype, [1] N, [2] C
// The scratch is filled with NaN first: a partial the kernel failed to write shows up.
KILN_ENTRY(layernormBackward) {
  const Dtype dt = args.dtype(0);
  const int N = args.integer(1), C = args.integer(2);
  expect_shape(N, C);
  const size_t NC = (size_t)N * C;
  expect_len(args, 0, NC, "layernormBackward: dinp");
  expect_len(args, 1, C, "layernormBackward: dweight");
  expect_len(args, 2, C, "layernormBackward: dbias");
  expect_len(args, 3, NC, "layernormBackward: dout");
  expect_len(args, 4, NC, "layernormBackward: inp");
  expect_len(args, 5, C, "layernormBackward: weight");
  expect_len(args, 6, N, "layernormBackward: mean");
  expect_len(args, 7, N, "layernormBackward: rstd");
  ActArray d_dinp(dt, NC, args.f32(0)), d_dout(dt, NC, args.f32(3)), d_inp(dt, NC, args.f32(4));
  DeviceArray<float> d_dw(C, args.f32(1)), d_db(C, args.f32(2)), d_w(C, args.f32(5)), d_mean(N, args.f32(6)), d_rstd(N, args.f32(7));
  const std::vector<float> nan_fill(layernorm_backward_scratch_floats(N, C), NAN);
  DeviceArray<float> d_scratch(nan_fill.size(), nan_fill.data());
  layernorm_backward(dt, d_dinp.get(), d_dw.get(), d_db.get(), d_scratch.get(), d_dout.get(), d_inp.get(), d_w.get(), d_mean.get(),
                     d_rstd.get(), N, C, 0);
  sync("layernormBackward");
  d_dinp.download(args.f32(0));
  d_dw.download(args.f32(1));
  d_db.download(args.f32(2));
}

// residualForward: out = a + b.
//   arrays: [0] out f32 (N), out (act)   [1] a f32 (N) (act)   [2] b f32 (N) (act)
//   nums:   [0] dtype, [1] alias: 0 out is its own buffer, 1 out is a's buffer, 2 out is b's
//           [2] misalign (optional, 0): 1 places every array one element past a 16-byte
//               boundary, so the kernel's scalar path runs
KILN_ENTRY(residualForward) {
  const Dtype dt = args.dtype(0);
  const int alias = args.integer(1);
  const size_t shift = args.nums.size() > 2 && args.integer(2) ? 1 : 0;
  if (alias < 0 || alias > 2) throw std::invalid_argument("residualForward: alias must be 0, 1 or 2");
  const size_t n = args.len(0);
  expect_len(args, 1, n, "residualForward: a");
  expect_len(args, 2, n, "residualForward: b");
  Placed d_out(dt, n, shift, nullptr), d_a(dt, n, shift, args.f32(1)), d_b(dt, n, shift, args.f32(2));
  const Placed& out = alias == 1 ? d_a : alias == 2 ? d_b : d_out;
  residual_forward(dt, out.get(), d_a.get(), d_b.get(), n, 0);
  sync("residualForward");
  out.download(args.f32(0));
}

}  // namespace kiln::entry
