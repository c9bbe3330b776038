// Test entry points for kernels/encoder.cu (tests/cuda/encoder.test.ts).
#include <string>
#include <vector>

#include "entry.h"

namespace kiln::entry {
namespace {

// The table sizes implied by the arrays, and every token id checked against the vocabulary
// (a kernel reading past wte would not fail loudly).
void check_shapes(Args& args, size_t wte_i, size_t wpe_i, const int32_t* inp, int B, int T, int C, int& V) {
  if (B < 1 || T < 1 || C < 1) throw std::invalid_argument("encoder: B, T, C must be >= 1");
  if (args.len(wte_i) % C || args.len(wpe_i) % C) throw std::invalid_argument("encoder: wte and wpe must be whole rows of C");
  V = (int)(args.len(wte_i) / C);
  if ((int)(args.len(wpe_i) / C) < T) throw std::invalid_argument("encoder: wpe has fewer than T rows");
  for (int i = 0; i < B * T; i++)
    if (inp[i] < 0 || inp[i] >= V) throw std::invalid_argument("encoder: token " + std::to_string(inp[i]) + " outside the vocabulary");
}

}  // namespace

// encoderForward
//   arrays: [0] out f32 (B*T*C), out (act: stored in dtype, widened back to f32)
//           [1] inp i32 (B*T)   [2] wte f32 (V*C)   [3] wpe f32 (maxT*C), maxT >= T
//   nums:   [0] dtype, [1] B, [2] T, [3] C
KILN_ENTRY(encoderForward) {
  const Dtype dt = args.dtype(0);
  const int B = args.integer(1), T = args.integer(2), C = args.integer(3);
  const int32_t* inp = args.i32(1);
  expect_len(args, 1, (size_t)B * T, "encoderForward: inp");
  expect_len(args, 0, (size_t)B * T * C, "encoderForward: out");
  int V;
  check_shapes(args, 2, 3, inp, B, T, C, V);
  ActArray d_out(dt, (size_t)B * T * C);
  DeviceArray<int32_t> d_inp((size_t)B * T, inp);
  DeviceArray<float> d_wte(args.len(2), args.f32(2)), d_wpe(args.len(3), args.f32(3));
  encoder_forward(dt, d_out.get(), d_inp.get(), d_wte.get(), d_wpe.get(), B, T, C, 0);
  sync("encoderForward");
  d_out.download(args.f32(0));
}

// encoderBackward: buckets built on the host from inp (encoder_buckets_host), as the model does.
//   arrays: [0] dwte f32 (V*C), in and out (accumulates)
//           [1] dwpe f32 (maxT*C), in and out (accumulates)
//           [2] dout f32 (B*T*C) (act: uploaded in dtype)   [3] inp i32 (B*T)
//   nums:   [0] dtype, [1] B, [2] T, [3] C
KILN_ENTRY(encoderBackward) {
  const Dtype dt = args.dtype(0);
  const int B = args.integer(1), T = args.integer(2), C = args.integer(3);
  const int32_t* inp = args.i32(3);
  expect_len(args, 3, (size_t)B * T, "encoderBackward: inp");
  expect_len(args, 2, (size_t)B * T * C, "encoderBackward: dout");
  int V;
  check_shapes(args, 0, 1, inp, B, T, C, V);

  std::vector<int> tokens, starts, positions;
  encoder_buckets_host(inp, B * T, tokens, starts, positions);
  if (starts.size() != tokens.size() + 1 || positions.size() != (size_t)B * T)
    throw std::logic_error("encoder_buckets_host: inconsistent buckets");
  DeviceArray<int32_t> d_tokens(tokens.size(), tokens.data()), d_starts(starts.size(), starts.data()),
      d_positions(positions.size(), positions.data());
  const EncoderBuckets buckets{d_tokens.get(), d_starts.get(), d_positions.get(), (int)tokens.size()};

  DeviceArray<float> d_dwte(args.len(0), args.f32(0)), d_dwpe(args.len(1), args.f32(1));
  ActArray d_dout(dt, (size_t)B * T * C, args.f32(2));
  encoder_backward(dt, d_dwte.get(), d_dwpe.get(), d_dout.get(), buckets, B, T, C, 0);
  sync("encoderBackward");
  d_dwte.download(args.f32(0));
  d_dwpe.download(args.f32(1));
}

// encoderBuckets: encoder_buckets_host's output, to check its grouping and order directly.
//   arrays: [0] inp i32 (BT), [1] tokens i32 (BT), out: the distinct tokens, then -1
//           [2] starts i32 (BT + 1), out: n + 1 offsets, then -1
//           [3] positions i32 (BT), out
//   nums:   none
KILN_ENTRY(encoderBuckets) {
  const size_t BT = args.len(0);
  expect_len(args, 1, BT, "encoderBuckets: tokens");
  expect_len(args, 2, BT + 1, "encoderBuckets: starts");
  expect_len(args, 3, BT, "encoderBuckets: positions");
  std::vector<int> tokens, starts, positions;
  encoder_buckets_host(args.i32(0), (int)BT, tokens, starts, positions);
  int32_t* t = args.i32(1);
  int32_t* s = args.i32(2);
  int32_t* p = args.i32(3);
  for (size_t i = 0; i < BT; i++) t[i] = i < tokens.size() ? tokens[i] : -1;
  for (size_t i = 0; i <= BT; i++) s[i] = i < starts.size() ? starts[i] : -1;
  for (size_t i = 0; i < BT; i++) p[i] = i < positions.size() ? positions[i] : -1;
}

}  // namespace kiln::entry
