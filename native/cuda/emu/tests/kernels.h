// Host entry points of tests/kernels.cu, for kiln_emu_tests.
#pragma once
#include <cstdint>
#include <cstdio>
#include "../../common/portable.cuh"

namespace kiln_emu_test {

struct ConstructsBlock {
  float2 stats;  // sum and max of mix(x) over the block's elements
  int4 votes;    // warps whose scan disagreed with their tree sum (0), lanes that saw a
                 // positive x, warps where any lane did, warps where all did
  uint2 where;   // blockIdx.x, blockDim.x
};
// y[i] = mix(x[i]); blocks[b] as above; totals = {blocks run, lanes voting}. Block size a
// multiple of 32, elements in runs of 4 per thread (grid-stride).
void constructs(const float* x, float* y, ConstructsBlock* blocks, unsigned int* totals, int n, int grid, int block);

// c (32x16 f32) = a (32x32 bf16 bits, row-major) * b (32x16 bf16 bits, row-major).
void tile_gemm(const uint16_t* a, const uint16_t* b, float* c);

struct HostInfo {
  int count;
  int major;
  char name[256];
  size_t free_bytes, total_bytes;
  bool zeros;
  float elapsed_ms;
  cudaError_t peek, last;
  char success_text[64];
};
HostInfo host_runtime();

}  // namespace kiln_emu_test
