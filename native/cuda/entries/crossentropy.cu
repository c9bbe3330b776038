// Test entry points for kernels/crossentropy.cu (tests/cuda/crossentropy.test.ts).
#include <string>

#include "entry.h"

namespace kiln::entry {

// crossentropyForwardBackward
//   arrays: [0] logits f32 (N*Vp), in and out: uploaded in the dtype, downloaded back (so
//               with writeDlogits the gradient, padding columns included; without it the
//               logits as the device held them)
//           [1] losses f32 (N), out
//           [2] targets i32 (N), each in [0, V)
//   nums:   [0] dtype (0 f32, 1 bf16), [1] N, [2] V, [3] Vp (row stride, >= V),
//           [4] dloss scale, [5] writeDlogits (0 or 1)
KILN_ENTRY(crossentropyForwardBackward) {
  const Dtype dt = args.dtype(0);
  const int N = args.integer(1), V = args.integer(2), Vp = args.integer(3);
  const float scale = (float)args.num(4);
  const bool write = args.integer(5) != 0;
  if (N < 1 || V < 1 || Vp < V) throw std::invalid_argument("crossentropyForwardBackward: need N >= 1, V >= 1, Vp >= V");
  float* logits = args.f32(0);
  float* losses = args.f32(1);
  const int32_t* targets = args.i32(2);
  if (args.len(0) != (size_t)N * Vp || args.len(1) != (size_t)N || args.len(2) != (size_t)N)
    throw std::invalid_argument("crossentropyForwardBackward: logits must hold N*Vp, losses and targets N");
  for (int n = 0; n < N; n++)
    if (targets[n] < 0 || targets[n] >= V)
      throw std::invalid_argument("crossentropyForwardBackward: target " + std::to_string(targets[n]) + " of row " + std::to_string(n) +
                                  " is outside [0, V)");

  ActArray d_logits(dt, (size_t)N * Vp, logits);
  DeviceArray<float> d_losses(N);
  DeviceArray<int32_t> d_targets(N, targets);
  crossentropy_forward_backward(dt, d_logits.get(), d_losses.get(), d_targets.get(), N, V, Vp, scale, write, 0);
  sync("crossentropyForwardBackward");
  d_logits.download(logits);
  d_losses.download(losses);
}

}  // namespace kiln::entry
