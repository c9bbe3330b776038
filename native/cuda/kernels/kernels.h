// Every CUDA kernel's host-side launcher: the one interface the model (model/gpt.cu), the
// test entry points (entries/) and the benchmarks call. One file per op in kernels/,
// forward and backward together, named after its CPU reference in src/reference/.
//
// Conventions (see native/cuda/README.md):
// - Activations and their gradients are stored in the run's dtype (Dtype::F32 for the
//   parity mode, Dtype::BF16 for mixed precision) and passed as void*; parameters, their
//   gradients, AdamW moments, LayerNorm statistics and losses are always f32.
// - Activation gradients are WRITTEN (=) unless the comment says "accumulates"; parameter
//   gradients always accumulate (+=), so micro-batches add up.
// - Every launcher handles any shape >= 1 (not only multiples of a tile) and is
//   deterministic: the same inputs give the same bits on every run (no float atomics).
// - Every launcher returns after queueing work on `s`; errors surface at the next sync.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>
#include "../common/portable.cuh"

namespace kiln {

enum class Dtype : int { F32 = 0, BF16 = 1 };
inline size_t dtype_size(Dtype d) { return d == Dtype::F32 ? 4 : 2; }

// ---- encoder.cu: token + position embedding (src/reference/encoder.ts)
// out (B,T,C) act; inp (B,T) token ids; wte (V,C) f32; wpe (maxT,C) f32.
void encoder_forward(Dtype dt, void* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C, cudaStream_t s);
// The deterministic backward groups positions by token on the host (the batch is there
// anyway): tokens[i] is the i-th distinct token id, its positions (b*T+t, ascending) are
// positions[starts[i] .. starts[i+1]). All three arrays live on the device.
struct EncoderBuckets {
  const int* tokens;
  const int* starts;     // n + 1 entries
  const int* positions;  // B*T entries
  int n;
};
void encoder_buckets_host(const int* inp, int BT, std::vector<int>& tokens, std::vector<int>& starts, std::vector<int>& positions);
// Accumulates dwte (V,C) and dwpe (maxT,C) from dout (B,T,C) act, summing each row's
// positions in ascending order.
void encoder_backward(Dtype dt, float* dwte, float* dwpe, const void* dout, EncoderBuckets buckets, int B, int T, int C, cudaStream_t s);

// ---- layernorm.cu: LayerNorm, and the residual add fused into it (src/reference/layernorm.ts, residual.ts)
// out, inp (N,C) act; w, b (C) f32; mean, rstd (N) f32 saved for backward. eps 1e-5, biased variance.
void layernorm_forward(Dtype dt, void* out, float* mean, float* rstd, const void* inp, const float* w, const float* b, int N, int C, cudaStream_t s);
// residual = a + b, out = LayerNorm(residual) in one pass (llm.c's fused_residual_forward).
void fused_residual_layernorm_forward(Dtype dt, void* residual, void* out, float* mean, float* rstd, const void* a, const void* b,
                                      const float* w, const float* bias, int N, int C, cudaStream_t s);
// dinp (N,C) act ACCUMULATES (it is the residual stream's gradient); dw, db (C) accumulate.
// scratch: layernorm_backward_scratch_floats(N, C) f32 for the deterministic reduction of dw, db.
size_t layernorm_backward_scratch_floats(int N, int C);
void layernorm_backward(Dtype dt, void* dinp, float* dw, float* db, float* scratch, const void* dout, const void* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C, cudaStream_t s);
// out = a + b (N elements); out may alias a or b.
void residual_forward(Dtype dt, void* out, const void* a, const void* b, size_t N, cudaStream_t s);

// ---- gelu.cu: GELU, tanh approximation (src/reference/gelu.ts)
void gelu_forward(Dtype dt, void* out, const void* inp, size_t N, cudaStream_t s);
// dinp = gelu'(inp) * dout (written); dinp may alias dout.
void gelu_backward(Dtype dt, void* dinp, const void* inp, const void* dout, size_t N, cudaStream_t s);

// ---- dropout.cu: masks bit-identical to src/core/dropout.ts (lowbias32 counter hash)
KILN_HD inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15; x *= 0x846ca68bu; x ^= x >> 16;
  return x;
}
uint32_t dropout_key(uint32_t step_seed, int micro_batch, int site);
// p is a double, as JavaScript's: round(p * 2^32) of an f32 p differs from the reference's
// threshold whenever p is not an f32 (0.1 gives 429496736, not 429496730).
uint32_t dropout_threshold(double p);  // round(p * 2^32), capped at 0xffffffff
float dropout_scale(double p);         // f32(1/(1-p))
KILN_HD inline bool dropout_keep(uint32_t key, uint32_t i, uint32_t threshold) {
  return lowbias32(lowbias32(i ^ key) + key) >= threshold;
}
// out = inp * (kept ? scale : 0); out may be inp. p == 0: a plain copy (or nothing in place).
void dropout_forward(Dtype dt, void* out, const void* inp, size_t N, double p, uint32_t key, cudaStream_t s);
// dinp = dout * (kept ? scale : 0) (written); dinp may be dout.
void dropout_backward(Dtype dt, void* dinp, const void* dout, size_t N, double p, uint32_t key, cudaStream_t s);

// ---- attention.cu: causal self-attention, flash-style (src/reference/attention.ts)
// qkv (B,T,3C) act laid out as the reference's (q, k, v each C = NH*HS, head h at h*HS);
// out (B,T,C) act; lse (B,NH,T) f32: each row's log-sum-exp of the scaled scores, saved for
// backward. Never materialises the (T,T) scores in global memory. Dropout on the
// probabilities with mask element ((b*NH+h)*T+t)*T+t2 (p 0: none).
void attention_forward(Dtype dt, void* out, float* lse, const void* qkv, int B, int T, int C, int NH, double dropout_p,
                       uint32_t dropout_key, cudaStream_t s);
// dqkv (B,T,3C) act written; recomputes the scores from qkv and lse.
size_t attention_backward_scratch_floats(int B, int T, int C, int NH);
void attention_backward(Dtype dt, void* dqkv, float* scratch, const void* dout, const void* qkv, const void* out, const float* lse,
                        int B, int T, int C, int NH, double dropout_p, uint32_t dropout_key, cudaStream_t s);
// The same with the kernels chosen: Auto (what the two above do) takes the tensor-core ones
// where they apply (bf16, head size 64 or 128, aligned tensors), else SIMT; the test entry
// points force each path so both are checked.
enum class AttentionImpl : int { Auto = 0, Simt = 1, TensorCore = 2 };
void attention_forward_impl(AttentionImpl impl, Dtype dt, void* out, float* lse, const void* qkv, int B, int T, int C, int NH,
                            double dropout_p, uint32_t dropout_key, cudaStream_t s);
void attention_backward_impl(AttentionImpl impl, Dtype dt, void* dqkv, float* scratch, const void* dout, const void* qkv, const void* out,
                             const float* lse, int B, int T, int C, int NH, double dropout_p, uint32_t dropout_key, cudaStream_t s);

// ---- crossentropy.cu: softmax + cross-entropy over the tied head, fused (src/reference/crossentropy.ts)
// logits (N, Vp) act, row stride Vp >= V; only columns < V are the vocabulary. losses (N) f32
// written: logsumexp(row) - row[target]. When write_dlogits, the row is overwritten in
// place with (softmax - onehot(target)) * dloss_scale, and columns V..Vp-1 with 0: the
// probabilities are never stored anywhere else.
void crossentropy_forward_backward(Dtype dt, void* logits, float* losses, const int* targets, int N, int V, int Vp, float dloss_scale,
                                   bool write_dlogits, cudaStream_t s);

// ---- matmul.cu: C = op(A) @ op(B) (+ bias) (+ C when accumulate). Row-major; op(A) is
// (M,K), op(B) is (K,N); transA means A is stored (K,M), transB means B is stored (N,K).
// lda/ldb/ldc: row strides of A, B, C as stored. bias (N) f32 or null. A and B share
// dtype ab; C has dtype c (f32 parameter gradients from bf16 inputs, for example).
enum class GemmImpl : int { Auto = 0, Simt = 1, TensorCore = 2, CublasLt = 3 };
struct Gemm {
  Dtype ab, c;
  const void* A; int lda; bool transA;
  const void* B; int ldb; bool transB;
  void* C; int ldc;
  const float* bias;
  int M, N, K;
  bool accumulate;
};
// Auto: f32 -> Simt (exact f32, the parity path); bf16 -> CublasLt where built, else TensorCore.
void matmul(const Gemm& g, cudaStream_t s, GemmImpl impl = GemmImpl::Auto);
bool gemm_available(GemmImpl impl);
// dbias (N) accumulates the column sums of dout (M,N) act; scratch: bias_backward_scratch_floats(M, N).
size_t bias_backward_scratch_floats(int M, int N);
void bias_backward(Dtype dt, float* dbias, float* scratch, const void* dout, int M, int N, cudaStream_t s);

// ---- adamw.cu: global gradient norm, clipping and AdamW (src/reference/adamw.ts)
// *normsq (one f32 on the device) = sum of grads[i]^2 over n, reduced deterministically.
size_t global_norm_scratch_floats(size_t n);
void global_norm_squared(float* normsq, float* scratch, const float* grads, size_t n, cudaStream_t s);
// One parameter tensor's range in the flat arrays and whether weight decay applies.
struct ParamSegment {
  size_t offset, size;
  int decay;
};
// Updates params, m, v in place over every segment (segments live on the device). The
// gradient scale is clip_grad_norm_'s, computed on the device from *normsq:
// grad_clip > 0 ? min(1, grad_clip / (sqrt(*normsq) + 1e-6)) : 1. t is the 1-based step.
// params_bf16 (same layout) is refreshed with the new parameters when not null. The
// hyperparameters are doubles, as the reference's: the step's constants (1 - beta2 above
// all) are derived on the host in double and rounded once, so f32 runs match it.
void adamw_update(float* params, const float* grads, float* m, float* v, uint16_t* params_bf16, const ParamSegment* segments, int nsegments,
                  double lr, double beta1, double beta2, double eps, double weight_decay, int t, const float* normsq,
                  double grad_clip, cudaStream_t s);
// ---- convert.cu: dst (n) bf16 = round-to-nearest-even of src (n) f32; and the reverse.
void f32_to_bf16(uint16_t* dst, const float* src, size_t n, cudaStream_t s);
void bf16_to_f32(float* dst, const uint16_t* src, size_t n, cudaStream_t s);

}  // namespace kiln
