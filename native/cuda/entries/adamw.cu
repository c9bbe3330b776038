// Test entry points for kernels/adamw.cu (tests/cuda/adamw.test.ts).
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {

// globalNormSquared
//   arrays: [0] grads f32 (n), [1] normsq f32 (1), out: the sum of squares
//   nums:   [0] misalign: 0 uploads grads at the start of the allocation (16-byte aligned,
//               the model's case); 1 one float in, so the kernel's scalar path runs
KILN_ENTRY(globalNormSquared) {
  const float* grads = args.f32(0);
  const size_t n = args.len(0);
  float* out = args.f32(1);
  if (args.len(1) != 1) throw std::invalid_argument("globalNormSquared: normsq must hold 1 float");
  const size_t shift = args.integer(0) ? 1 : 0;
  std::vector<float> host(n + shift, 0.f);
  std::copy(grads, grads + n, host.begin() + shift);
  DeviceArray<float> d_grads(n + shift, host.data());
  DeviceArray<float> d_scratch(global_norm_scratch_floats(n));
  DeviceArray<float> d_normsq(1);
  global_norm_squared(d_normsq.get(), d_scratch.get(), d_grads.get() + shift, n, 0);
  sync("globalNormSquared");
  d_normsq.download(out);
}

// adamwUpdate
//   arrays: [0] params f32 (n), in and out      [1] grads f32 (n)
//           [2] m f32 (n), in and out           [3] v f32 (n), in and out
//           [4] segments u32 (3 per segment: offset, size, decay 0/1)
//           [5] paramsBf16 f32: empty for none (null to the kernel), or n, out: the bf16
//               copy's values widened to f32
//           [6] normsq f32 (1): with computeNorm out (the norm kernel's result, which the
//               update then reads on the device), otherwise in
//   nums:   [0] lr, [1] beta1, [2] beta2, [3] eps, [4] weightDecay, [5] t (1-based),
//           [6] gradClip (0: off), [7] computeNorm (0 or 1)
KILN_ENTRY(adamwUpdate) {
  const size_t n = args.len(0);
  float* params = args.f32(0);
  const float* grads = args.f32(1);
  float* m = args.f32(2);
  float* v = args.f32(3);
  const uint32_t* seg_words = args.u32(4);
  float* bf16_out = args.f32(5);
  float* normsq = args.f32(6);
  if (args.len(1) != n || args.len(2) != n || args.len(3) != n) throw std::invalid_argument("adamwUpdate: params, grads, m, v differ in length");
  if (args.len(4) % 3 != 0) throw std::invalid_argument("adamwUpdate: segments must hold 3 words per segment");
  if (args.len(5) != 0 && args.len(5) != n) throw std::invalid_argument("adamwUpdate: paramsBf16 must be empty or hold n");
  if (args.len(6) != 1) throw std::invalid_argument("adamwUpdate: normsq must hold 1 float");
  std::vector<ParamSegment> segs(args.len(4) / 3);
  for (size_t k = 0; k < segs.size(); k++) {
    segs[k] = ParamSegment{seg_words[3 * k], seg_words[3 * k + 1], (int)seg_words[3 * k + 2]};
    if (segs[k].offset + segs[k].size > n)
      throw std::invalid_argument("adamwUpdate: segment " + std::to_string(k) + " runs past the arrays");
  }
  const int t = args.integer(5);
  if (t < 1) throw std::invalid_argument("adamwUpdate: t is 1-based");
  const bool compute_norm = args.integer(7) != 0;

  DeviceArray<float> d_params(n, params), d_grads(n, grads), d_m(n, m), d_v(n, v);
  // Uploaded as words: entry.cpp instantiates DeviceArray for the element types only.
  static_assert(sizeof(ParamSegment) % sizeof(uint32_t) == 0, "ParamSegment as whole words");
  DeviceArray<uint32_t> d_segs(segs.size() * (sizeof(ParamSegment) / sizeof(uint32_t)), reinterpret_cast<const uint32_t*>(segs.data()));
  DeviceArray<uint16_t> d_bf16(args.len(5));
  DeviceArray<float> d_normsq(1, normsq);
  DeviceArray<float> d_scratch(global_norm_scratch_floats(n));
  if (compute_norm) global_norm_squared(d_normsq.get(), d_scratch.get(), d_grads.get(), n, 0);
  adamw_update(d_params.get(), d_grads.get(), d_m.get(), d_v.get(), args.len(5) ? d_bf16.get() : nullptr, reinterpret_cast<const ParamSegment*>(d_segs.get()), (int)segs.size(),
               args.num(0), args.num(1), args.num(2), args.num(3), args.num(4), t, d_normsq.get(),
               args.num(6), 0);
  sync("adamwUpdate");
  d_params.download(params);
  d_m.download(m);
  d_v.download(v);
  d_normsq.download(normsq);
  if (args.len(5)) {
    std::vector<uint16_t> bits(n);
    d_bf16.download(bits.data());
    for (size_t i = 0; i < n; i++) bf16_out[i] = bf16_bits_to_f32(bits[i]);
  }
}

}  // namespace kiln::entry
