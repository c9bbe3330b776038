// Token + position embedding (src/reference/encoder.ts), forward and a deterministic
// backward (llm.c's encoder_forward_kernel3 / wte_backward_kernel / wpe_backward_kernel).
//
// The backward needs no float atomics: the host groups the batch's positions by token
// (encoder_buckets_host), so each dwte row is owned by one block that walks its token's
// positions in ascending order, and each dwpe element (t, c) by one thread that walks the
// batch in order. Both start from the gradient already there and add one position at a
// time, so in f32 they round exactly as the reference's `+=` loop does.
#include <algorithm>
#include <numeric>

#include "kernels.h"
#include "packed.cuh"

namespace kiln {
namespace {

constexpr int kThreads = 256;
constexpr int kWteMaxThreads = 256;

// out[row, c..c+V) = wte[inp[row], c..] + wpe[row % seq_len, c..]: one thread per chunk of V
// output elements (16 bytes of T), reading V floats of each table.
template <class T>
__global__ void encoder_forward_kernel(T* __restrict__ out, const int* __restrict__ inp, const float* __restrict__ wte,
                                       const float* __restrict__ wpe, int BT, int seq_len, int C, bool vec) {
  constexpr int V = Packed<T>::size;
  const int chunks = (C + V - 1) / V;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)BT * chunks) return;
  const int row = (int)(idx / chunks);
  const int c = (int)(idx % chunks) * V;
  const int m = min(V, C - c);
  float e[V], p[V];
  load_f32<V>(e, wte + (size_t)inp[row] * C + c, m, vec);
  load_f32<V>(p, wpe + (size_t)(row % seq_len) * C + c, m, vec);
#pragma unroll
  for (int k = 0; k < V; k++) e[k] += p[k];
  store_chunk<T>(out + (size_t)row * C + c, e, m, vec);
}

// Block (bucket, column tile): dwte[token, c..c+V) += dout[p, c..] for the bucket's
// positions p in ascending order. The position indices are block-uniform loads (one
// broadcast per warp); the dout rows are read 16 bytes per thread, coalesced along C.
template <class T>
__global__ void encoder_backward_wte_kernel(float* __restrict__ dwte, const T* __restrict__ dout, const int* __restrict__ tokens,
                                            const int* __restrict__ starts, const int* __restrict__ positions, int C, bool vec) {
  constexpr int V = Packed<T>::size;
  const int bucket = blockIdx.x;
  const int c = (blockIdx.y * blockDim.x + threadIdx.x) * V;
  if (c >= C) return;
  const int m = min(V, C - c);
  float* row = dwte + (size_t)tokens[bucket] * C + c;
  const int end = starts[bucket + 1];
  float acc[V];
  load_f32<V>(acc, row, m, vec);
  for (int j = starts[bucket]; j < end; j++) {
    float d[V];
    load_chunk<T>(d, dout + (size_t)positions[j] * C + c, m, vec);
#pragma unroll
    for (int k = 0; k < V; k++) acc[k] += d[k];
  }
  store_f32<V>(row, acc, m, vec);
}

// Thread (t, chunk): dwpe[t, c..c+V) += dout[b, t, c..] for b = 0..B-1 in order.
template <class T>
__global__ void encoder_backward_wpe_kernel(float* __restrict__ dwpe, const T* __restrict__ dout, int B, int seq_len, int C, bool vec) {
  constexpr int V = Packed<T>::size;
  const int chunks = (C + V - 1) / V;
  const size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (size_t)seq_len * chunks) return;
  const int t = (int)(idx / chunks);
  const int c = (int)(idx % chunks) * V;
  const int m = min(V, C - c);
  float* row = dwpe + (size_t)t * C + c;
  float acc[V];
  load_f32<V>(acc, row, m, vec);
  for (int b = 0; b < B; b++) {
    float d[V];
    load_chunk<T>(d, dout + ((size_t)b * seq_len + t) * C + c, m, vec);
#pragma unroll
    for (int k = 0; k < V; k++) acc[k] += d[k];
  }
  store_f32<V>(row, acc, m, vec);
}

template <class T>
void forward(void* out, const int* inp, const float* wte, const float* wpe, int B, int seq_len, int C, cudaStream_t s) {
  constexpr int V = Packed<T>::size;
  T* o = static_cast<T*>(out);
  const size_t work = (size_t)B * seq_len * ((C + V - 1) / V);
  const bool vec = C % V == 0 && aligned16(o, wte, wpe);
  KILN_LAUNCH((encoder_forward_kernel<T>), blocks_for(work, kThreads), kThreads, 0, s, o, inp, wte, wpe, B * seq_len, seq_len, C, vec);
}

template <class T>
void backward(float* dwte, float* dwpe, const void* dout, const EncoderBuckets& bk, int B, int seq_len, int C, cudaStream_t s) {
  constexpr int V = Packed<T>::size;
  const T* d = static_cast<const T*>(dout);
  const bool vec = C % V == 0 && aligned16(dwte, dwpe, d);
  const int chunks = (C + V - 1) / V;
  // Whole warps, no more than a row needs: narrow rows get narrow blocks, wide rows tiles.
  const int threads = std::min(kWteMaxThreads, (chunks + 31) / 32 * 32);
  if (bk.n > 0) {
    const dim3 grid((unsigned)bk.n, blocks_for(chunks, threads));
    KILN_LAUNCH((encoder_backward_wte_kernel<T>), grid, threads, 0, s, dwte, d, bk.tokens, bk.starts, bk.positions, C, vec);
  }
  KILN_LAUNCH((encoder_backward_wpe_kernel<T>), blocks_for((size_t)seq_len * chunks, kThreads), kThreads, 0, s, dwpe, d, B, seq_len, C, vec);
}

}  // namespace

void encoder_forward(Dtype dt, void* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C, cudaStream_t s) {
  if (B <= 0 || T <= 0 || C <= 0) return;
  if (dt == Dtype::F32) forward<float>(out, inp, wte, wpe, B, T, C, s);
  else forward<bf16>(out, inp, wte, wpe, B, T, C, s);
}

// Buckets ordered by size, largest first, so that the blocks with the longest serial sums
// (the frequent tokens) start first on the GPU; ties by token id, so the order is a pure
// function of inp. Positions ascend within a bucket (stable sort), which fixes the order
// of each row's sum.
void encoder_buckets_host(const int* inp, int BT, std::vector<int>& tokens, std::vector<int>& starts, std::vector<int>& positions) {
  std::vector<int> order((size_t)std::max(BT, 0));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [inp](int x, int y) { return inp[x] < inp[y]; });

  struct Group {
    int token, begin, size;
  };
  std::vector<Group> groups;
  for (int i = 0; i < BT;) {
    int j = i + 1;
    while (j < BT && inp[order[j]] == inp[order[i]]) j++;
    groups.push_back({inp[order[i]], i, j - i});
    i = j;
  }
  std::sort(groups.begin(), groups.end(),
            [](const Group& x, const Group& y) { return x.size != y.size ? x.size > y.size : x.token < y.token; });

  tokens.clear();
  starts.clear();
  positions.clear();
  tokens.reserve(groups.size());
  starts.reserve(groups.size() + 1);
  positions.reserve(order.size());
  starts.push_back(0);
  for (const Group& g : groups) {
    tokens.push_back(g.token);
    positions.insert(positions.end(), order.begin() + g.begin, order.begin() + g.begin + g.size);
    starts.push_back((int)positions.size());
  }
}

void encoder_backward(Dtype dt, float* dwte, float* dwpe, const void* dout, EncoderBuckets buckets, int B, int T, int C, cudaStream_t s) {
  if (B <= 0 || T <= 0 || C <= 0) return;
  if (dt == Dtype::F32) backward<float>(dwte, dwpe, dout, buckets, B, T, C, s);
  else backward<bf16>(dwte, dwpe, dout, buckets, B, T, C, s);
}

}  // namespace kiln
