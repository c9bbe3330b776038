// Test entry points for kernels/dropout.cu (tests/cuda/dropout.test.ts).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {

// dropoutForward: out = inp * (kept ? 1/(1-p) : 0).
//   arrays: [0] out f32 (N), out (act)   [1] inp f32 (N) (act)
//   nums:   [0] dtype, [1] p, [2] key (u32), [3] inPlace (optional, 0): out = inp's buffer,
//           [4] misalign (optional, 0): 1 places the arrays off 16-byte alignment
KILN_ENTRY(dropoutForward) {
  const Dtype dt = args.dtype(0);
  const double p = args.num(1);
  const uint32_t key = u32_num(args, 2, "dropoutForward: key");
  const bool in_place = flag(args, 3);
  const size_t shift = flag(args, 4) ? 1 : 0;
  const size_t n = args.len(0);
  expect_len(args, 1, n, "dropoutForward: inp");
  const std::vector<float> nan_fill(n, NAN);
  Placed d_inp(dt, n, shift, args.f32(1)), d_out(dt, in_place ? 0 : n, shift, nan_fill.data());
  const Placed& out = in_place ? d_inp : d_out;
  dropout_forward(dt, out.get(), d_inp.get(), n, p, key, 0);
  sync("dropoutForward");
  out.download(args.f32(0));
}

// dropoutBackward: dinp = dout * (kept ? 1/(1-p) : 0), written.
//   arrays: [0] dinp f32 (N), out (act; what it held is ignored)   [1] dout f32 (N) (act)
//   nums:   [0] dtype, [1] p, [2] key (u32), [3] inPlace (optional, 0): dinp = dout's buffer,
//           [4] misalign (optional, 0): 1 places the arrays off 16-byte alignment
KILN_ENTRY(dropoutBackward) {
  const Dtype dt = args.dtype(0);
  const double p = args.num(1);
  const uint32_t key = u32_num(args, 2, "dropoutBackward: key");
  const bool in_place = flag(args, 3);
  const size_t shift = flag(args, 4) ? 1 : 0;
  const size_t n = args.len(0);
  expect_len(args, 1, n, "dropoutBackward: dout");
  const std::vector<float> nan_fill(n, NAN);
  Placed d_dout(dt, n, shift, args.f32(1)), d_dinp(dt, in_place ? 0 : n, shift, nan_fill.data());
  const Placed& dinp = in_place ? d_dout : d_dinp;
  dropout_backward(dt, dinp.get(), d_dout.get(), n, p, key, 0);
  sync("dropoutBackward");
  dinp.download(args.f32(0));
}

// dropoutMask: the device's keep bits, by running dropout_forward (f32) on ones: an element
// is kept exactly when its output is nonzero (the scale is >= 1).
//   arrays: [0] keep u32 (N), out: 1 kept, 0 dropped
//   nums:   [0] p, [1] key (u32)
KILN_ENTRY(dropoutMask) {
  const double p = args.num(0);
  const uint32_t key = u32_num(args, 1, "dropoutMask: key");
  const size_t n = args.len(0);
  const std::vector<float> ones(n, 1.0f);
  DeviceArray<float> d(n, ones.data());
  dropout_forward(Dtype::F32, d.get(), d.get(), n, p, key, 0);
  sync("dropoutMask");
  std::vector<float> out(n);
  d.download(out.data());
  uint32_t* keep = args.u32(0);
  for (size_t i = 0; i < n; i++) keep[i] = out[i] != 0.0f;
}

// dropoutKey: dropout_key for each (stepSeed, microBatch, site) triple (host code).
//   arrays: [0] keys u32 (n), out   [1] stepSeeds u32 (n)   [2] microBatches i32 (n)   [3] sites i32 (n)
//   nums:   none
KILN_ENTRY(dropoutKey) {
  const size_t n = args.len(0);
  expect_len(args, 1, n, "dropoutKey: stepSeeds");
  expect_len(args, 2, n, "dropoutKey: microBatches");
  expect_len(args, 3, n, "dropoutKey: sites");
  uint32_t* keys = args.u32(0);
  const uint32_t* seeds = args.u32(1);
  const int32_t* mbs = args.i32(2);
  const int32_t* sites = args.i32(3);
  for (size_t i = 0; i < n; i++) keys[i] = dropout_key(seeds[i], mbs[i], sites[i]);
}

// dropoutThresholdScale: dropout_threshold and dropout_scale of each p (host code).
//   arrays: [0] thresholds u32 (n), out   [1] scales f32 (n), out
//   nums:   the n probabilities
KILN_ENTRY(dropoutThresholdScale) {
  const size_t n = args.nums.size();
  expect_len(args, 0, n, "dropoutThresholdScale: thresholds");
  expect_len(args, 1, n, "dropoutThresholdScale: scales");
  uint32_t* thresholds = args.u32(0);
  float* scales = args.f32(1);
  for (size_t i = 0; i < n; i++) {
    thresholds[i] = dropout_threshold(args.num(i));
    scales[i] = dropout_scale(args.num(i));
  }
}

}  // namespace kiln::entry
