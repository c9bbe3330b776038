// The GPT-2 training graph on the device (model/gpt.h), after llm.c's train_gpt2.cu: the
// same model and step as src/reference/gpt.ts + src/backends/cpu.ts, built from the
// launchers of kernels/kernels.h on one stream, with one host sync per call.
//
// Device memory, all allocated in the constructor (plan_bytes enumerates the same list):
// - f32 parameters, gradients, AdamW m and v in the flat layout of the TensorSlots, except
//   that wte holds Vp = roundup(V, 128) rows: the tied head's GEMMs then see a vocabulary
//   that is a whole number of tiles. The extra rows are zero and stay zero (their logits
//   get zero gradient, AdamW's segments skip them); load/save copy around the gap.
// - BF16 mode: a bf16 copy of the parameters for the GEMMs' operands, refreshed by
//   adamw_update and by load. Master weights, biases, LayerNorm and embeddings stay f32.
// - Activations as llm.c keeps them, in the run's dtype; no (T,T) attention matrix (the
//   attention kernels keep each row's log-sum-exp instead) and no (B*T, V) logits: the
//   classifier runs in row chunks through one (chunk, Vp) buffer, forward and backward
//   fused per chunk.
#include "gpt.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace kiln {
namespace {

constexpr int kVocabMultiple = 128;  // tile-friendly vocabulary (50257 -> 50304, as llm.c)
constexpr int kLossThreads = 256;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("GptModel: ") + what + ": " + cudaGetErrorString(err));
}

// acc[0] += scale * (losses[0] + ... + losses[n-1]). One block in a fixed order, so the
// step's loss is the same bits on every run, and it stays on the device until the one
// read at the end of the step.
__global__ void __launch_bounds__(kLossThreads) loss_accumulate_kernel(float* acc, const float* losses, int n, float scale) {
  __shared__ float part[kLossThreads];
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += kLossThreads) s += losses[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int stride = kLossThreads / 2; stride > 0; stride >>= 1) {
    if ((int)threadIdx.x < stride) part[threadIdx.x] += part[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) acc[0] += part[0] * scale;
}

// Everything the buffer plan depends on, from the dims and options alone (plan_bytes has
// no layout; the constructor checks that the layout is the one these dims imply).
struct Shape {
  int V, Vp, maxT, L, NH, C, Bmax;
  Dtype dt;
  bool recompute;
  size_t asz;       // bytes per activation element
  size_t BT;        // positions per micro-batch at most: Bmax * maxT
  size_t nparams;   // the flat layout's parameters
  size_t ndevice;   // with wte's padding rows
  int chunk;        // classifier rows per pass
  size_t scratch;   // f32 scratch shared by the reductions (one stream: never two at once)
  int nslots;
};

size_t expected_params(const ModelDims& d) {
  const size_t V = d.vocab, T = d.block, L = d.layers, C = d.embd;
  return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C;
}

Shape make_shape(const ModelDims& d, const ModelOptions& o) {
  if (d.vocab < 1 || d.block < 1 || d.layers < 1 || d.heads < 1 || d.embd < 1)
    throw std::invalid_argument("GptModel: vocab, block, layers, heads and embd must all be >= 1");
  if (d.embd % d.heads != 0)
    throw std::invalid_argument("GptModel: embd " + std::to_string(d.embd) + " is not divisible by heads " + std::to_string(d.heads));
  if (o.max_batch < 1) throw std::invalid_argument("GptModel: max_batch must be >= 1");
  if (o.dtype != Dtype::F32 && o.dtype != Dtype::BF16) throw std::invalid_argument("GptModel: dtype must be F32 or BF16");
  Shape s;
  s.V = d.vocab;
  s.Vp = (d.vocab + kVocabMultiple - 1) / kVocabMultiple * kVocabMultiple;
  s.maxT = d.block;
  s.L = d.layers;
  s.NH = d.heads;
  s.C = d.embd;
  s.Bmax = o.max_batch;
  s.dt = o.dtype;
  s.recompute = o.recompute;
  s.asz = dtype_size(o.dtype);
  s.BT = (size_t)o.max_batch * (size_t)d.block;
  const size_t C = d.embd;
  // The launchers take int row and column counts; the widest GEMM is (BT, 4C).
  if (s.BT * 4 * C > (size_t)INT32_MAX || (size_t)s.Vp * C > (size_t)INT32_MAX)
    throw std::invalid_argument("GptModel: max_batch * block * 4 * embd or vocab * embd exceeds 2^31");
  s.nparams = expected_params(d);
  s.ndevice = s.nparams + (size_t)(s.Vp - s.V) * C;
  // Classifier chunk: a logits buffer no larger than one layer's fch activation, but at
  // least 128 rows (or all of them) so a small model with a large vocabulary does not
  // run its head as a long series of thin GEMMs; whole 128-row tiles where it is larger.
  size_t rows = s.BT * 4 * C / (size_t)s.Vp;
  rows = std::max(rows, std::min(s.BT, (size_t)128));
  if (rows >= 128) rows -= rows % 128;
  s.chunk = (int)std::min(rows, s.BT);
  if ((size_t)s.chunk * s.Vp > (size_t)INT32_MAX) throw std::invalid_argument("GptModel: the logits chunk exceeds 2^31 values");
  const int BT = (int)s.BT;
  s.scratch = std::max({layernorm_backward_scratch_floats(BT, d.embd), bias_backward_scratch_floats(BT, d.embd),
                        bias_backward_scratch_floats(BT, 3 * d.embd), bias_backward_scratch_floats(BT, 4 * d.embd),
                        attention_backward_scratch_floats(o.max_batch, d.block, d.embd, d.heads), global_norm_scratch_floats(s.ndevice),
                        (size_t)1});
  s.nslots = 12 * d.layers + 4;
  return s;
}

// One layer's saved activations (llm.c's ActivationTensors, per layer).
struct LayerActs {
  void *ln1, *qkv, *atty, *residual2, *ln2, *fch, *fch_gelu, *residual3;
  float *ln1_mean, *ln1_rstd, *lse, *ln2_mean, *ln2_rstd;
};

// One layer's tensors: offsets into the device's flat arrays (params, grads, the bf16 copy).
struct LayerOffsets {
  size_t ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb;
};

struct Buffers {
  float *params = nullptr, *grads = nullptr, *m = nullptr, *v = nullptr;
  uint16_t* params_bf16 = nullptr;
  ParamSegment* segments = nullptr;
  float* scalars = nullptr;  // [0] the loss being summed, [1] the squared gradient norm
  float* scratch = nullptr;
  float* logits_row = nullptr;  // f32 (Vp): logits()'s one row
  int* ids = nullptr;           // one micro-batch: inputs, targets, then the encoder's buckets
  void* encoded = nullptr;
  std::vector<LayerActs> layers;
  void* lnf = nullptr;
  float *lnf_mean = nullptr, *lnf_rstd = nullptr;
  float* losses = nullptr;
  void* logits = nullptr;  // (chunk, Vp); its backward overwrites it with dlogits
  // Backward scratch, also the forward's: the attention and MLP branch outputs go through
  // dln before the residual add, and with recompute GELU's output lives in wide.
  void* dres = nullptr;  // (BT, C) the residual stream's gradient
  void* dln = nullptr;   // (BT, C)
  void* wide = nullptr;  // (BT, 4C): dfch; then dqkv (BT, 3C) with datty (BT, C) after it
};

// ids: [inputs BT][targets BT][bucket tokens BT][bucket starts BT + 1][positions BT]
size_t id_ints(const Shape& s) { return 5 * s.BT + 1; }

// Every device buffer and its size, in one place: the constructor allocates what this
// lists and plan_bytes adds it up, so the two cannot disagree.
template <class F>
void for_each_buffer(const Shape& s, Buffers& b, F&& f) {
  const size_t a = s.asz, BT = s.BT, C = s.C, P = s.ndevice;
  const size_t stats = BT * sizeof(float);
  f(b.params, P * 4);
  f(b.grads, P * 4);
  f(b.m, P * 4);
  f(b.v, P * 4);
  f(b.params_bf16, s.dt == Dtype::BF16 ? P * 2 : 0);
  f(b.segments, (size_t)s.nslots * sizeof(ParamSegment));
  f(b.scalars, 2 * sizeof(float));
  f(b.scratch, s.scratch * sizeof(float));
  f(b.logits_row, (size_t)s.Vp * sizeof(float));
  f(b.ids, id_ints(s) * sizeof(int));
  f(b.encoded, BT * C * a);
  b.layers.resize(s.L);
  for (LayerActs& l : b.layers) {
    f(l.ln1, BT * C * a);
    f(l.ln1_mean, stats);
    f(l.ln1_rstd, stats);
    f(l.qkv, BT * 3 * C * a);
    f(l.atty, BT * C * a);
    f(l.lse, (size_t)s.Bmax * s.NH * s.maxT * sizeof(float));
    f(l.residual2, BT * C * a);
    f(l.ln2, BT * C * a);
    f(l.ln2_mean, stats);
    f(l.ln2_rstd, stats);
    f(l.fch, BT * 4 * C * a);
    f(l.fch_gelu, s.recompute ? 0 : BT * 4 * C * a);
    f(l.residual3, BT * C * a);
  }
  f(b.lnf, BT * C * a);
  f(b.lnf_mean, stats);
  f(b.lnf_rstd, stats);
  f(b.losses, stats);
  f(b.logits, (size_t)s.chunk * s.Vp * a);
  f(b.dres, BT * C * a);
  f(b.dln, BT * C * a);
  f(b.wide, BT * 4 * C * a);
}

size_t total_bytes(const Shape& s) {
  Buffers b;
  size_t total = 0;
  for_each_buffer(s, b, [&](auto*&, size_t bytes) { total += bytes; });
  return total;
}

const char* dtype_name(Dtype d) { return d == Dtype::F32 ? "f32" : "bf16"; }

}  // namespace

struct GptModel::Impl {
  Shape s;
  GemmImpl gemm_impl;
  std::vector<TensorSlot> layout;
  // The flat layout maps to the device's by shifting everything at or after the end of
  // wte's V rows by the padding rows' (Vp - V) * C.
  size_t gap_at = 0, gap = 0;
  size_t wte = 0, wpe = 0, lnfw = 0, lnfb = 0;
  std::vector<LayerOffsets> lo;
  std::vector<ParamSegment> segments;
  Buffers b;
  std::vector<void*> allocations;
  size_t bytes = 0;
  cudaStream_t stream = nullptr;
  // Pinned staging for the ids: two slots, so building micro-batch k+1's buckets on the
  // host overlaps micro-batch k on the device; an event says when a slot's copy is done.
  int* host_ids[2] = {nullptr, nullptr};
  cudaEvent_t staged[2] = {nullptr, nullptr};
  bool slot_pending[2] = {false, false};
  int next_slot = 0;
  float* host_scalars = nullptr;
  std::vector<int> bucket_tokens, bucket_starts, bucket_positions;
  int steps = 0;

  // Where the current micro-batch's ids sit on the device, and its encoder buckets.
  const int* d_inputs() const { return b.ids; }
  const int* d_targets() const { return b.ids + s.BT; }
  EncoderBuckets buckets{nullptr, nullptr, nullptr, 0};

  size_t device_offset(size_t flat) const { return flat >= gap_at ? flat + gap : flat; }
  float* param(size_t off) const { return b.params + off; }
  float* grad(size_t off) const { return b.grads + off; }
  // A weight as a GEMM operand: the bf16 copy in mixed precision, the master otherwise.
  const void* weight(size_t off) const {
    return s.dt == Dtype::BF16 ? static_cast<const void*>(b.params_bf16 + off) : static_cast<const void*>(b.params + off);
  }
  void* act(void* base, size_t elems) const { return static_cast<char*>(base) + elems * s.asz; }

  void gemm(const void* A, int lda, bool tA, const void* B, int ldb, bool tB, void* C, Dtype cdt, int ldc, const float* bias, int M,
            int N, int K, bool accumulate) {
    Gemm g{s.dt, cdt, A, lda, tA, B, ldb, tB, C, ldc, bias, M, N, K, accumulate};
    matmul(g, stream, gemm_impl);
  }

  void setup_layout(const ModelDims& dims);
  void allocate();
  void release() noexcept;
  void check_batch(const int* inputs, const int* targets, int B, int T, int micro_batches) const;
  void stage(const int* inputs, const int* targets, int BT, bool buckets_too);
  void forward(int B, int T, double p, uint32_t seed, int micro_batch);
  void classifier(int BT, bool backward, float dloss_scale, float loss_scale);
  void backward(int B, int T, double p, uint32_t seed, int micro_batch);
  void copy_in(float* dev, const float* host);
  void copy_out(float* host, const float* dev) const;
  void sync(const char* what) const {
    check(cudaStreamSynchronize(stream), what);
    check(cudaGetLastError(), what);
  }
};

void GptModel::Impl::setup_layout(const ModelDims& d) {
  const size_t C = d.embd;
  // The tensors of src/core/model-spec.ts by name, with the sizes these dims give them.
  std::map<std::string, size_t> want;
  want["transformer.wte.weight"] = (size_t)d.vocab * C;
  want["transformer.wpe.weight"] = (size_t)d.block * C;
  const std::pair<const char*, size_t> block[] = {
      {"ln_1.weight", C},           {"ln_1.bias", C},         {"attn.c_attn.weight", C * 3 * C}, {"attn.c_attn.bias", 3 * C},
      {"attn.c_proj.weight", C * C}, {"attn.c_proj.bias", C}, {"ln_2.weight", C},                {"ln_2.bias", C},
      {"mlp.c_fc.weight", C * 4 * C}, {"mlp.c_fc.bias", 4 * C}, {"mlp.c_proj.weight", 4 * C * C},  {"mlp.c_proj.bias", C}};
  for (int l = 0; l < d.layers; l++)
    for (const auto& [n, size] : block) want["transformer.h." + std::to_string(l) + "." + n] = size;
  want["transformer.ln_f.weight"] = C;
  want["transformer.ln_f.bias"] = C;

  std::map<std::string, const TensorSlot*> by_name;
  for (const TensorSlot& t : layout) {
    auto w = want.find(t.name);
    if (w == want.end()) throw std::invalid_argument("GptModel: layout has an unknown tensor " + t.name);
    if (t.size != w->second)
      throw std::invalid_argument("GptModel: " + t.name + " has " + std::to_string(t.size) + " values, these dims give it " +
                                  std::to_string(w->second));
    if (!by_name.emplace(t.name, &t).second) throw std::invalid_argument("GptModel: layout names " + t.name + " twice");
  }
  if (by_name.size() != want.size())
    for (const auto& [n, size] : want)
      if (!by_name.count(n)) throw std::invalid_argument("GptModel: layout lacks " + n);
  // The slots must tile [0, nparams) exactly: load and save copy the flat array whole.
  std::vector<const TensorSlot*> sorted;
  for (const TensorSlot& t : layout) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](const TensorSlot* x, const TensorSlot* y) { return x->offset < y->offset; });
  size_t end = 0;
  for (const TensorSlot* t : sorted) {
    if (t->offset != end) throw std::invalid_argument("GptModel: layout is not contiguous at " + t->name);
    end += t->size;
  }
  if (end != s.nparams) throw std::invalid_argument("GptModel: layout holds " + std::to_string(end) + " parameters, expected " +
                                                    std::to_string(s.nparams));

  const TensorSlot& wte_slot = *by_name.at("transformer.wte.weight");
  gap_at = wte_slot.offset + wte_slot.size;
  gap = (size_t)(s.Vp - s.V) * C;
  auto at = [&](const std::string& n) { return device_offset(by_name.at(n)->offset); };
  wte = at("transformer.wte.weight");
  wpe = at("transformer.wpe.weight");
  lnfw = at("transformer.ln_f.weight");
  lnfb = at("transformer.ln_f.bias");
  lo.resize(d.layers);
  for (int l = 0; l < d.layers; l++) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    lo[l] = {at(h + "ln_1.weight"),     at(h + "ln_1.bias"),      at(h + "attn.c_attn.weight"), at(h + "attn.c_attn.bias"),
             at(h + "attn.c_proj.weight"), at(h + "attn.c_proj.bias"), at(h + "ln_2.weight"),     at(h + "ln_2.bias"),
             at(h + "mlp.c_fc.weight"),  at(h + "mlp.c_fc.bias"),  at(h + "mlp.c_proj.weight"), at(h + "mlp.c_proj.bias")};
  }
  // AdamW's segments cover the real rows only: the padding keeps its zeros.
  for (const TensorSlot& t : layout) segments.push_back({device_offset(t.offset), t.size, t.decay ? 1 : 0});
}

void GptModel::Impl::allocate() {
  for_each_buffer(s, b, [&](auto*& ptr, size_t n) {
    ptr = nullptr;
    if (n == 0) return;
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // a failed allocation is not sticky; leave no error behind
      throw std::runtime_error("GptModel: cudaMalloc of " + std::to_string(n) + " bytes failed (" + cudaGetErrorString(err) +
                               ") after " + std::to_string(bytes) + " of the " + std::to_string(total_bytes(s)) +
                               " bytes this model needs (" + dtype_name(s.dt) + ", max_batch " + std::to_string(s.Bmax) + ")");
    }
    allocations.push_back(p);
    bytes += n;
    ptr = static_cast<std::remove_reference_t<decltype(ptr)>>(p);
  });
  check(cudaStreamCreate(&stream), "cudaStreamCreate");
  for (int i = 0; i < 2; i++) {
    check(cudaEventCreate(&staged[i]), "cudaEventCreate");
    check(cudaMallocHost(&host_ids[i], id_ints(s) * sizeof(int)), "cudaMallocHost (ids)");
  }
  check(cudaMallocHost(&host_scalars, 2 * sizeof(float)), "cudaMallocHost (results)");
  // A model used before load() computes with zeros rather than garbage, and the padding
  // rows (which nothing else writes) start at zero.
  check(cudaMemsetAsync(b.params, 0, s.ndevice * 4, stream), "cudaMemsetAsync");
  check(cudaMemsetAsync(b.m, 0, s.ndevice * 4, stream), "cudaMemsetAsync");
  check(cudaMemsetAsync(b.v, 0, s.ndevice * 4, stream), "cudaMemsetAsync");
  check(cudaMemsetAsync(b.grads, 0, s.ndevice * 4, stream), "cudaMemsetAsync");
  if (b.params_bf16) check(cudaMemsetAsync(b.params_bf16, 0, s.ndevice * 2, stream), "cudaMemsetAsync");
  check(cudaMemcpyAsync(b.segments, segments.data(), segments.size() * sizeof(ParamSegment), cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (segments)");
  sync("constructor");
}

void GptModel::Impl::release() noexcept {
  if (stream) cudaStreamSynchronize(stream);
  for (void* p : allocations) cudaFree(p);
  allocations.clear();
  for (int i = 0; i < 2; i++) {
    if (staged[i]) cudaEventDestroy(staged[i]);
    if (host_ids[i]) cudaFreeHost(host_ids[i]);
  }
  if (host_scalars) cudaFreeHost(host_scalars);
  if (stream) cudaStreamDestroy(stream);
  cudaGetLastError();
}

void GptModel::Impl::check_batch(const int* inputs, const int* targets, int B, int T, int micro_batches) const {
  if (B < 1 || B > s.Bmax) throw std::invalid_argument("GptModel: B " + std::to_string(B) + " outside 1.." + std::to_string(s.Bmax));
  if (T < 1 || T > s.maxT) throw std::invalid_argument("GptModel: T " + std::to_string(T) + " outside 1.." + std::to_string(s.maxT));
  if (micro_batches < 1) throw std::invalid_argument("GptModel: micro_batches must be >= 1");
  // An id outside the vocabulary would index past wte on the device: refuse it here.
  const size_t n = (size_t)micro_batches * B * T;
  for (const int* ids : {inputs, targets}) {
    if (!ids) continue;
    for (size_t i = 0; i < n; i++)
      if (ids[i] < 0 || ids[i] >= s.V)
        throw std::invalid_argument(std::string("GptModel: ") + (ids == inputs ? "inputs[" : "targets[") + std::to_string(i) +
                                    "] is " + std::to_string(ids[i]) + ", outside the vocabulary of " + std::to_string(s.V));
  }
}

// Uploads one micro-batch's ids (and, for training, the encoder backward's buckets) with
// one async copy from pinned memory. Reusing a slot waits for its previous copy, which
// the device reached long ago (a micro-batch back); the stream is never drained here.
void GptModel::Impl::stage(const int* inputs, const int* targets, int BT, bool buckets_too) {
  const int slot = next_slot;
  next_slot ^= 1;
  if (slot_pending[slot]) check(cudaEventSynchronize(staged[slot]), "cudaEventSynchronize (ids)");
  int* h = host_ids[slot];
  const size_t N = s.BT;
  std::copy(inputs, inputs + BT, h);
  if (targets) std::copy(targets, targets + BT, h + N);
  if (buckets_too) {
    encoder_buckets_host(inputs, BT, bucket_tokens, bucket_starts, bucket_positions);
    std::copy(bucket_tokens.begin(), bucket_tokens.end(), h + 2 * N);
    std::copy(bucket_starts.begin(), bucket_starts.end(), h + 3 * N);
    std::copy(bucket_positions.begin(), bucket_positions.end(), h + 4 * N + 1);
    buckets = {b.ids + 2 * N, b.ids + 3 * N, b.ids + 4 * N + 1, (int)bucket_tokens.size()};
  }
  check(cudaMemcpyAsync(b.ids, h, id_ints(s) * sizeof(int), cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync (ids)");
  check(cudaEventRecord(staged[slot], stream), "cudaEventRecord");
  slot_pending[slot] = true;
}

// The reference's forward, llm.c's order: each residual add is fused with the LayerNorm
// that reads it (the next layer's ln_1, or ln_f after the last layer).
void GptModel::Impl::forward(int B, int T, double p, uint32_t seed, int mb) {
  const Dtype dt = s.dt;
  const int BT = B * T, C = s.C, NH = s.NH, L = s.L;
  const size_t n = (size_t)BT * C;
  const bool drop = p > 0.f;
  auto key = [&](int site) { return drop ? dropout_key(seed, mb, site) : 0u; };

  encoder_forward(dt, b.encoded, d_inputs(), param(wte), param(wpe), B, T, C, stream);
  if (drop) dropout_forward(dt, b.encoded, b.encoded, n, p, key(0), stream);
  layernorm_forward(dt, b.layers[0].ln1, b.layers[0].ln1_mean, b.layers[0].ln1_rstd, b.encoded, param(lo[0].ln1w), param(lo[0].ln1b),
                    BT, C, stream);
  for (int l = 0; l < L; l++) {
    LayerActs& a = b.layers[l];
    const LayerOffsets& w = lo[l];
    const void* x = l > 0 ? b.layers[l - 1].residual3 : b.encoded;
    gemm(a.ln1, C, false, weight(w.qkvw), 3 * C, false, a.qkv, dt, 3 * C, param(w.qkvb), BT, 3 * C, C, false);
    attention_forward(dt, a.atty, a.lse, a.qkv, B, T, C, NH, p, key(1 + 3 * l), stream);
    gemm(a.atty, C, false, weight(w.attprojw), C, false, b.dln, dt, C, param(w.attprojb), BT, C, C, false);
    if (drop) dropout_forward(dt, b.dln, b.dln, n, p, key(2 + 3 * l), stream);
    fused_residual_layernorm_forward(dt, a.residual2, a.ln2, a.ln2_mean, a.ln2_rstd, x, b.dln, param(w.ln2w), param(w.ln2b), BT, C,
                                     stream);
    gemm(a.ln2, C, false, weight(w.fcw), 4 * C, false, a.fch, dt, 4 * C, param(w.fcb), BT, 4 * C, C, false);
    void* gelu = s.recompute ? b.wide : a.fch_gelu;
    gelu_forward(dt, gelu, a.fch, 4 * n, stream);
    gemm(gelu, 4 * C, false, weight(w.fcprojw), C, false, b.dln, dt, C, param(w.fcprojb), BT, C, 4 * C, false);
    if (drop) dropout_forward(dt, b.dln, b.dln, n, p, key(3 + 3 * l), stream);
    if (l + 1 < L) {
      LayerActs& next = b.layers[l + 1];
      fused_residual_layernorm_forward(dt, a.residual3, next.ln1, next.ln1_mean, next.ln1_rstd, a.residual2, b.dln,
                                       param(lo[l + 1].ln1w), param(lo[l + 1].ln1b), BT, C, stream);
    } else {
      fused_residual_layernorm_forward(dt, a.residual3, b.lnf, b.lnf_mean, b.lnf_rstd, a.residual2, b.dln, param(lnfw), param(lnfb), BT,
                                       C, stream);
    }
  }
}

// The tied head and the loss over lnf's BT rows, a chunk at a time: logits = x @ wte^T,
// softmax + cross-entropy in place (the probabilities exist only as dlogits), then with
// backward dx = dlogits @ wte into dln and dwte += dlogits^T @ x before the next chunk
// reuses the buffer. losses are added to scalars[0] scaled by loss_scale.
void GptModel::Impl::classifier(int BT, bool backward, float dloss_scale, float loss_scale) {
  const Dtype dt = s.dt;
  const int C = s.C, Vp = s.Vp;
  for (int r0 = 0; r0 < BT; r0 += s.chunk) {
    const int rows = std::min(s.chunk, BT - r0);
    void* x = act(b.lnf, (size_t)r0 * C);
    gemm(x, C, false, weight(wte), C, true, b.logits, dt, Vp, nullptr, rows, Vp, C, false);
    crossentropy_forward_backward(dt, b.logits, b.losses + r0, d_targets() + r0, rows, s.V, Vp, dloss_scale, backward, stream);
    if (!backward) continue;
    gemm(b.logits, Vp, false, weight(wte), C, false, act(b.dln, (size_t)r0 * C), dt, C, nullptr, rows, C, Vp, false);
    gemm(b.logits, Vp, true, x, C, false, grad(wte), Dtype::F32, C, nullptr, Vp, C, rows, true);
  }
  KILN_LAUNCH(loss_accumulate_kernel, dim3(1), dim3(kLossThreads), 0, stream, b.scalars, b.losses, BT, loss_scale);
}

// The reference's backward after the head (dln holds dL/dlnf): llm.c's order, with the
// residual stream's gradient in dres, to which every LayerNorm backward adds its input's.
void GptModel::Impl::backward(int B, int T, double p, uint32_t seed, int mb) {
  const Dtype dt = s.dt;
  const Dtype f32 = Dtype::F32;
  const int BT = B * T, C = s.C, NH = s.NH, L = s.L;
  const size_t n = (size_t)BT * C;
  const bool drop = p > 0.f;
  auto key = [&](int site) { return drop ? dropout_key(seed, mb, site) : 0u; };
  // The gradient reaching a dropped branch output is dres through the site's mask; it goes
  // to dln, which is free until the branch's input gradient is written there.
  auto through_dropout = [&](int site) -> const void* {
    if (!drop) return b.dres;
    dropout_backward(dt, b.dln, b.dres, n, p, key(site), stream);
    return b.dln;
  };

  check(cudaMemsetAsync(b.dres, 0, n * s.asz, stream), "cudaMemsetAsync (dres)");
  layernorm_backward(dt, b.dres, grad(lnfw), grad(lnfb), b.scratch, b.dln, b.layers[L - 1].residual3, param(lnfw), b.lnf_mean,
                     b.lnf_rstd, BT, C, stream);
  for (int l = L - 1; l >= 0; l--) {
    LayerActs& a = b.layers[l];
    const LayerOffsets& w = lo[l];
    const void* x = l > 0 ? b.layers[l - 1].residual3 : b.encoded;

    // MLP branch: residual3 = residual2 + drop(c_proj(gelu(c_fc(ln_2(residual2)))))
    const void* dy = through_dropout(3 + 3 * l);
    const void* gelu = a.fch_gelu;
    if (s.recompute) {  // wide is free until dfch is written into it, after its one reader
      gelu_forward(dt, b.wide, a.fch, 4 * n, stream);
      gelu = b.wide;
    }
    gemm(gelu, 4 * C, true, dy, C, false, grad(w.fcprojw), f32, C, nullptr, 4 * C, C, BT, true);
    bias_backward(dt, grad(w.fcprojb), b.scratch, dy, BT, C, stream);
    gemm(dy, C, false, weight(w.fcprojw), C, true, b.wide, dt, 4 * C, nullptr, BT, 4 * C, C, false);
    gelu_backward(dt, b.wide, a.fch, b.wide, 4 * n, stream);
    gemm(a.ln2, C, true, b.wide, 4 * C, false, grad(w.fcw), f32, 4 * C, nullptr, C, 4 * C, BT, true);
    bias_backward(dt, grad(w.fcb), b.scratch, b.wide, BT, 4 * C, stream);
    gemm(b.wide, 4 * C, false, weight(w.fcw), 4 * C, true, b.dln, dt, C, nullptr, BT, C, 4 * C, false);
    layernorm_backward(dt, b.dres, grad(w.ln2w), grad(w.ln2b), b.scratch, b.dln, a.residual2, param(w.ln2w), a.ln2_mean, a.ln2_rstd,
                       BT, C, stream);

    // Attention branch: residual2 = x + drop(c_proj(attn(c_attn(ln_1(x))))). dy may sit
    // in dln, so datty goes to wide's tail, beside dqkv (3C of each 4C-wide row's worth).
    dy = through_dropout(2 + 3 * l);
    void* dqkv = b.wide;
    void* datty = act(b.wide, 3 * n);
    gemm(a.atty, C, true, dy, C, false, grad(w.attprojw), f32, C, nullptr, C, C, BT, true);
    bias_backward(dt, grad(w.attprojb), b.scratch, dy, BT, C, stream);
    gemm(dy, C, false, weight(w.attprojw), C, true, datty, dt, C, nullptr, BT, C, C, false);
    attention_backward(dt, dqkv, b.scratch, datty, a.qkv, a.atty, a.lse, B, T, C, NH, p, key(1 + 3 * l), stream);
    gemm(a.ln1, C, true, dqkv, 3 * C, false, grad(w.qkvw), f32, 3 * C, nullptr, C, 3 * C, BT, true);
    bias_backward(dt, grad(w.qkvb), b.scratch, dqkv, BT, 3 * C, stream);
    gemm(dqkv, 3 * C, false, weight(w.qkvw), 3 * C, true, b.dln, dt, C, nullptr, BT, C, 3 * C, false);
    layernorm_backward(dt, b.dres, grad(w.ln1w), grad(w.ln1b), b.scratch, b.dln, x, param(w.ln1w), a.ln1_mean, a.ln1_rstd, BT, C,
                       stream);
  }
  encoder_backward(dt, grad(wte), grad(wpe), through_dropout(0), buckets, B, T, C, stream);
}

void GptModel::Impl::copy_in(float* dev, const float* host) {
  const size_t total = s.nparams;
  if (!host) {
    check(cudaMemsetAsync(dev, 0, s.ndevice * 4, stream), "cudaMemsetAsync");
    return;
  }
  check(cudaMemcpyAsync(dev, host, gap_at * 4, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync (load)");
  check(cudaMemsetAsync(dev + gap_at, 0, gap * 4, stream), "cudaMemsetAsync (padding rows)");
  check(cudaMemcpyAsync(dev + gap_at + gap, host + gap_at, (total - gap_at) * 4, cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync (load)");
}

void GptModel::Impl::copy_out(float* host, const float* dev) const {
  const size_t total = s.nparams;
  check(cudaMemcpyAsync(host, dev, gap_at * 4, cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (save)");
  check(cudaMemcpyAsync(host + gap_at, dev + gap_at + gap, (total - gap_at) * 4, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync (save)");
}

GptModel::GptModel(ModelDims dims, std::vector<TensorSlot> layout, ModelOptions options) : impl_(new Impl) {
  try {
    Impl& m = *impl_;
    m.s = make_shape(dims, options);
    if (options.gemm != GemmImpl::Auto && !gemm_available(options.gemm))
      throw std::invalid_argument(std::string("GptModel: the ") +
                                  (options.gemm == GemmImpl::CublasLt ? "cublaslt" : options.gemm == GemmImpl::TensorCore ? "tensor-core" : "simt") +
                                  " GEMM is not built into this addon");
    m.gemm_impl = options.gemm;
    m.layout = std::move(layout);
    m.setup_layout(dims);
    m.allocate();
  } catch (...) {
    impl_->release();
    delete impl_;
    impl_ = nullptr;
    throw;
  }
}

GptModel::~GptModel() {
  if (!impl_) return;
  impl_->release();
  delete impl_;
}

size_t GptModel::num_params() const { return impl_->s.nparams; }
size_t GptModel::device_bytes() const { return impl_->bytes; }

size_t GptModel::recompute_saved_bytes() const {
  const Shape& s = impl_->s;
  // Without recompute every layer keeps its (BT, 4C) GELU output; with it, GELU's output
  // borrows the backward's wide scratch in both passes and no layer keeps one.
  return s.recompute ? (size_t)s.L * s.BT * 4 * s.C * s.asz : 0;
}

size_t GptModel::plan_bytes(const ModelDims& dims, const ModelOptions& options) { return total_bytes(make_shape(dims, options)); }

void GptModel::load(const float* params, const float* m, const float* v, int step) {
  Impl& x = *impl_;
  if (!params) throw std::invalid_argument("GptModel::load: params is null");
  if (step < 0) throw std::invalid_argument("GptModel::load: step must be >= 0");
  x.copy_in(x.b.params, params);
  x.copy_in(x.b.m, m);
  x.copy_in(x.b.v, v);
  if (x.b.params_bf16) f32_to_bf16(x.b.params_bf16, x.b.params, x.s.ndevice, x.stream);
  x.sync("load");
  x.steps = step;
}

StepResult GptModel::step(const int* inputs, const int* targets, int B, int T, int micro_batches, const StepHyperParams& hp) {
  Impl& x = *impl_;
  x.check_batch(inputs, targets, B, T, micro_batches);
  if (!targets) throw std::invalid_argument("GptModel::step: targets is null");
  if (!(hp.dropout_p >= 0.0 && hp.dropout_p < 1.0)) throw std::invalid_argument("GptModel::step: dropout_p must be in [0, 1)");
  const int BT = B * T;
  // The reference differentiates (1/micro_batches) * mean over BT; its loss is the mean
  // of the micro-batches' means: the same factor, applied to the sum of every position.
  const float scale = (float)(1.0 / ((double)BT * micro_batches));
  check(cudaMemsetAsync(x.b.grads, 0, x.s.ndevice * 4, x.stream), "cudaMemsetAsync (grads)");
  check(cudaMemsetAsync(x.b.scalars, 0, 2 * sizeof(float), x.stream), "cudaMemsetAsync (scalars)");
  for (int k = 0; k < micro_batches; k++) {
    const size_t off = (size_t)k * BT;
    x.stage(inputs + off, targets + off, BT, true);
    x.forward(B, T, hp.dropout_p, hp.dropout_seed, k);
    x.classifier(BT, true, scale, scale);
    x.backward(B, T, hp.dropout_p, hp.dropout_seed, k);
  }
  global_norm_squared(x.b.scalars + 1, x.b.scratch, x.b.grads, x.s.ndevice, x.stream);
  adamw_update(x.b.params, x.b.grads, x.b.m, x.b.v, x.b.params_bf16, x.b.segments, (int)x.segments.size(), hp.lr, hp.beta1, hp.beta2,
               hp.eps, hp.weight_decay, x.steps + 1, x.b.scalars + 1, hp.grad_clip, x.stream);
  check(cudaMemcpyAsync(x.host_scalars, x.b.scalars, 2 * sizeof(float), cudaMemcpyDeviceToHost, x.stream), "cudaMemcpyAsync (results)");
  x.sync("step");
  x.steps += 1;
  return {x.host_scalars[0], (float)std::sqrt((double)x.host_scalars[1])};
}

float GptModel::loss(const int* inputs, const int* targets, int B, int T, int micro_batches) {
  Impl& x = *impl_;
  x.check_batch(inputs, targets, B, T, micro_batches);
  if (!targets) throw std::invalid_argument("GptModel::loss: targets is null");
  const int BT = B * T;
  const float scale = (float)(1.0 / ((double)BT * micro_batches));
  check(cudaMemsetAsync(x.b.scalars, 0, sizeof(float), x.stream), "cudaMemsetAsync (scalars)");
  for (int k = 0; k < micro_batches; k++) {
    const size_t off = (size_t)k * BT;
    x.stage(inputs + off, targets + off, BT, false);
    x.forward(B, T, 0.f, 0, k);
    x.classifier(BT, false, 0.f, scale);
  }
  check(cudaMemcpyAsync(x.host_scalars, x.b.scalars, sizeof(float), cudaMemcpyDeviceToHost, x.stream), "cudaMemcpyAsync (loss)");
  x.sync("loss");
  return x.host_scalars[0];
}

void GptModel::logits(const int* context, int T, float* out) {
  Impl& x = *impl_;
  x.check_batch(context, nullptr, 1, T, 1);
  const int C = x.s.C;
  x.stage(context, nullptr, T, false);
  x.forward(1, T, 0.f, 0, 0);
  // Only the last position is wanted: one row through the head, straight to f32.
  x.gemm(x.act(x.b.lnf, (size_t)(T - 1) * C), C, false, x.weight(x.wte), C, true, x.b.logits_row, Dtype::F32, x.s.Vp, nullptr, 1,
         x.s.Vp, C, false);
  check(cudaMemcpyAsync(out, x.b.logits_row, (size_t)x.s.V * sizeof(float), cudaMemcpyDeviceToHost, x.stream),
        "cudaMemcpyAsync (logits)");
  x.sync("logits");
}

void GptModel::save(float* params, float* m, float* v, int* step) const {
  const Impl& x = *impl_;
  if (params) x.copy_out(params, x.b.params);
  if (m) x.copy_out(m, x.b.m);
  if (v) x.copy_out(v, x.b.v);
  x.sync("save");
  if (step) *step = x.steps;
}

}  // namespace kiln
