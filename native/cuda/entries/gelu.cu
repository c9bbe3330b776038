// Test entry points for kernels/gelu.cu (tests/cuda/gelu.test.ts).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {
namespace {

void expect_len(const Args& args, size_t i, size_t n, const char* what) {
  if (args.len(i) != n)
    throw std::invalid_argument(std::string(what) + " must hold " + std::to_string(n) + " elements, not " + std::to_string(args.len(i)));
}

// An optional trailing flag: absent means 0.
bool flag(const Args& args, size_t i) { return args.nums.size() > i && args.integer(i) != 0; }

// An activation array placed `shift` elements into its allocation: shift 1 puts it off
// 16-byte alignment, so a launcher must pick its kernel's scalar path.
class Placed {
 public:
  Placed(Dtype dt, size_t n, size_t shift, const float* host)
      : arr_(dt, n + shift, host ? padded(host, n, shift).data() : nullptr), dt_(dt), n_(n), shift_(shift) {}
  void* get() const { return static_cast<char*>(arr_.get()) + shift_ * dtype_size(dt_); }
  void download(float* host) const {
    std::vector<float> v(n_ + shift_);
    arr_.download(v.data());
    std::copy(v.begin() + shift_, v.end(), host);
  }

 private:
  static std::vector<float> padded(const float* host, size_t n, size_t shift) {
    std::vector<float> v(n + shift, 0.0f);
    std::copy(host, host + n, v.begin() + shift);
    return v;
  }
  ActArray arr_;
  Dtype dt_;
  size_t n_, shift_;
};

}  // namespace

// geluForward
//   arrays: [0] out f32 (N), out (act)   [1] inp f32 (N) (act)
//   nums:   [0] dtype, [1] inPlace (optional, 0): 1 runs with out = inp's buffer,
//           [2] misalign (optional, 0): 1 places the arrays off 16-byte alignment
KILN_ENTRY(geluForward) {
  const Dtype dt = args.dtype(0);
  const bool in_place = flag(args, 1);
  const size_t shift = flag(args, 2) ? 1 : 0;
  const size_t n = args.len(0);
  expect_len(args, 1, n, "geluForward: inp");
  Placed d_inp(dt, n, shift, args.f32(1)), d_out(dt, in_place ? 0 : n, shift, nullptr);
  const Placed& out = in_place ? d_inp : d_out;
  gelu_forward(dt, out.get(), d_inp.get(), n, 0);
  sync("geluForward");
  out.download(args.f32(0));
}

// geluBackward: dinp = gelu'(inp) * dout, written.
//   arrays: [0] dinp f32 (N), out (act; what it held is ignored)
//           [1] inp f32 (N) (act)   [2] dout f32 (N) (act)
//   nums:   [0] dtype, [1] inPlace (optional, 0): 1 runs with dinp = dout's buffer,
//           [2] misalign (optional, 0): 1 places the arrays off 16-byte alignment
KILN_ENTRY(geluBackward) {
  const Dtype dt = args.dtype(0);
  const bool in_place = flag(args, 1);
  const size_t shift = flag(args, 2) ? 1 : 0;
  const size_t n = args.len(0);
  expect_len(args, 1, n, "geluBackward: inp");
  expect_len(args, 2, n, "geluBackward: dout");
  // dinp starts as NaN, so an element the kernel does not write cannot pass for a result.
  const std::vector<float> nan_fill(n, NAN);
  Placed d_inp(dt, n, shift, args.f32(1)), d_dout(dt, n, shift, args.f32(2)), d_dinp(dt, in_place ? 0 : n, shift, nan_fill.data());
  const Placed& dinp = in_place ? d_dout : d_dinp;
  gelu_backward(dt, dinp.get(), d_inp.get(), d_dout.get(), n, 0);
  sync("geluBackward");
  dinp.download(args.f32(0));
}

}  // namespace kiln::entry
