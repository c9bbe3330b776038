// Attention's test entry points (tests/cuda/attention.test.ts).
#include <stdexcept>
#include "entry.h"

namespace kiln::entry {
namespace {

struct AttnDims {
  Dtype dt;
  int B, T, C, NH;
  double p;
  uint32_t key;
  AttentionImpl impl;
};

AttnDims dims_of(Args& args, const char* op) {
  // nums[7], optional: 0 auto (the launchers' choice), 1 SIMT, 2 tensor cores.
  const int impl = args.nums.size() > 7 ? args.integer(7) : 0;
  if (impl < 0 || impl > 2) throw std::invalid_argument(std::string(op) + ": impl must be 0 (auto), 1 (simt) or 2 (tensor-core)");
  const double p = args.num(5), key = args.num(6);
  if (!(p >= 0 && p < 1)) throw std::invalid_argument(std::string(op) + ": dropoutP must be in [0, 1)");
  if (!(key >= 0 && key <= 4294967295.0 && key == (double)(uint32_t)key))
    throw std::invalid_argument(std::string(op) + ": dropoutKey must be a 32-bit unsigned integer");
  AttnDims d{args.dtype(0), args.integer(1), args.integer(2), args.integer(3), args.integer(4), p, (uint32_t)key,
             static_cast<AttentionImpl>(impl)};
  if (d.B < 1 || d.T < 1 || d.C < 1 || d.NH < 1 || d.C % d.NH != 0)
    throw std::invalid_argument(std::string(op) + ": bad shape (B, T, C, NH)");
  return d;
}

}  // namespace

// arrays: out (B,T,C), lse (B,NH,T), qkv (B,T,3C); nums: dtype, B, T, C, NH, dropoutP, dropoutKey[, impl].
KILN_ENTRY(attentionForward) {
  const AttnDims d = dims_of(args, "attentionForward");
  const size_t BT = (size_t)d.B * d.T;
  expect_len(args, 0, BT * d.C, "attentionForward out");
  expect_len(args, 1, (size_t)d.B * d.NH * d.T, "attentionForward lse");
  expect_len(args, 2, BT * 3 * d.C, "attentionForward qkv");
  ActArray out(d.dt, BT * d.C);
  DeviceArray<float> lse(args.len(1));
  ActArray qkv(d.dt, BT * 3 * d.C, args.f32(2));
  attention_forward_impl(d.impl, d.dt, out.get(), lse.get(), qkv.get(), d.B, d.T, d.C, d.NH, d.p, d.key, 0);
  sync("attentionForward");
  out.download(args.f32(0));
  lse.download(args.f32(1));
}

// arrays: dqkv (B,T,3C) written, dout (B,T,C), qkv (B,T,3C), out (B,T,C), lse (B,NH,T);
// nums: dtype, B, T, C, NH, dropoutP, dropoutKey[, impl].
KILN_ENTRY(attentionBackward) {
  const AttnDims d = dims_of(args, "attentionBackward");
  const size_t BT = (size_t)d.B * d.T;
  expect_len(args, 0, BT * 3 * d.C, "attentionBackward dqkv");
  expect_len(args, 1, BT * d.C, "attentionBackward dout");
  expect_len(args, 2, BT * 3 * d.C, "attentionBackward qkv");
  expect_len(args, 3, BT * d.C, "attentionBackward out");
  expect_len(args, 4, (size_t)d.B * d.NH * d.T, "attentionBackward lse");
  // dqkv starts as the caller's values so that an element the kernels fail to write shows.
  ActArray dqkv(d.dt, BT * 3 * d.C, args.f32(0));
  ActArray dout(d.dt, BT * d.C, args.f32(1));
  ActArray qkv(d.dt, BT * 3 * d.C, args.f32(2));
  ActArray out(d.dt, BT * d.C, args.f32(3));
  DeviceArray<float> lse(args.len(4), args.f32(4));
  DeviceArray<float> scratch(attention_backward_scratch_floats(d.B, d.T, d.C, d.NH));
  attention_backward_impl(d.impl, d.dt, dqkv.get(), scratch.get(), dout.get(), qkv.get(), out.get(), lse.get(), d.B, d.T, d.C, d.NH, d.p,
                          d.key, 0);
  sync("attentionBackward");
  dqkv.download(args.f32(0));
}

}  // namespace kiln::entry
