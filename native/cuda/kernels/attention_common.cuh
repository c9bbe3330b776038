// Private to the attention op's two sources: kernels/attention.cu (the SIMT kernels and the
// launchers of kernels.h) and kernels/attention_tc.cu (the tensor-core kernels, which those
// launchers call through forward_tc and backward_tc below).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include "kernels.h"

namespace kiln {
namespace attn {

// Dropout on the probabilities: element ((b*NH+h)*T+t)*T+t2 of dropout.ts's mask. The
// index wraps mod 2^32 exactly as the reference's `i ^ key` (ToInt32) does.
struct DropoutMask {
  uint32_t key, threshold;
  float scale;
  bool on;
};
__device__ __forceinline__ float drop_factor(const DropoutMask& m, uint32_t i) {
  return dropout_keep(m.key, i, m.threshold) ? m.scale : 0.f;
}

inline void check_launch(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// A call's head size, score scale (1/sqrt(hs)) and dropout mask (attention.cu's shape_of).
struct Shape {
  int hs;
  float scale;
  DropoutMask mask;
};

// The tensor-core path (attention_tc.cu): bf16, head size sh.hs of 64 or 128, the tensors it
// copies 16-byte aligned; attention.cu's use_tc checks all three before calling.
void forward_tc(void* out, float* lse, const void* qkv, int B, int Tn, int C, int NH, const Shape& sh, cudaStream_t s);
void backward_tc(void* dqkv, const float* delta, const void* dout, const void* qkv, const float* lse, int B, int Tn, int C, int NH,
                 const Shape& sh, cudaStream_t s);

}  // namespace attn
}  // namespace kiln
