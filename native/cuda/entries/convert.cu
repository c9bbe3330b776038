// Test entry points for kernels/convert.cu (tests/cuda/convert.test.ts).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {

// f32ToBf16
//   arrays: [0] dst u32 (n), out: each element's bf16 bits (low 16 bits)   [1] src f32 (n)
//   nums:   [0] misalign (optional, 0): 1 places both arrays one element into their
//               allocations, off 16-byte alignment, so the scalar path runs
KILN_ENTRY(f32ToBf16) {
  const size_t n = args.len(0);
  expect_len(args, 1, n, "f32ToBf16: src");
  const size_t shift = flag(args, 0) ? 1 : 0;
  std::vector<float> src(n + shift, 0.0f);
  std::copy(args.f32(1), args.f32(1) + n, src.begin() + shift);
  DeviceArray<float> d_src(n + shift, src.data());
  // dst starts as 0xffff (a NaN pattern), so an element left unwritten is visible.
  const std::vector<uint16_t> fill(n + shift, 0xffff);
  DeviceArray<uint16_t> d_dst(n + shift, fill.data());
  f32_to_bf16(d_dst.get() + shift, d_src.get() + shift, n, 0);
  sync("f32ToBf16");
  std::vector<uint16_t> bits(n + shift);
  d_dst.download(bits.data());
  uint32_t* dst = args.u32(0);
  for (size_t i = 0; i < n; i++) dst[i] = bits[i + shift];
}

// bf16ToF32
//   arrays: [0] dst f32 (n), out   [1] src u32 (n): bf16 bits in the low 16 bits
//   nums:   [0] misalign (optional, 0), as f32ToBf16
KILN_ENTRY(bf16ToF32) {
  const size_t n = args.len(0);
  expect_len(args, 1, n, "bf16ToF32: src");
  const size_t shift = flag(args, 0) ? 1 : 0;
  const uint32_t* src = args.u32(1);
  std::vector<uint16_t> bits(n + shift, 0);
  for (size_t i = 0; i < n; i++) {
    if (src[i] > 0xffff) throw std::invalid_argument("bf16ToF32: src holds a value above 0xffff");
    bits[i + shift] = (uint16_t)src[i];
  }
  DeviceArray<uint16_t> d_src(n + shift, bits.data());
  const std::vector<float> nan_fill(n + shift, NAN);
  DeviceArray<float> d_dst(n + shift, nan_fill.data());
  bf16_to_f32(d_dst.get() + shift, d_src.get() + shift, n, 0);
  sync("bf16ToF32");
  std::vector<float> out(n + shift);
  d_dst.download(out.data());
  std::copy(out.begin() + shift, out.end(), args.f32(0));
}

}  // namespace kiln::entry
