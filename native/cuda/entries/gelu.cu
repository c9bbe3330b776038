// Test entry points for kernels/gelu.cu (tests/cuda/gelu.test.ts).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {

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
