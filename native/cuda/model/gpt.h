// The GPT-2 training graph on the device: the same model, step and semantics as
// src/reference/gpt.ts and src/backends/cpu.ts (micro-batches averaged, global-norm
// clipping, AdamW with per-tensor decay, nanoGPT's dropout sites with src/core/dropout.ts
// keys), built from the launchers in kernels/kernels.h. The addon wraps it for
// src/backends/cuda/; nothing here knows about JavaScript.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
#include "../kernels/kernels.h"

namespace kiln {

struct ModelDims {
  int vocab, block, layers, heads, embd;
};

// One parameter tensor of the flat layout of src/core/model-spec.ts, by its Hugging Face
// name ("transformer.h.0.ln_1.weight"); the model finds every tensor by name.
struct TensorSlot {
  std::string name;
  size_t offset, size;
  bool decay;
};

struct StepHyperParams {
  double lr, weight_decay, beta1, beta2, eps, grad_clip;  // doubles, as the reference's
  double dropout_p;       // 0: no dropout (double: its mask threshold must equal dropout.ts's)
  uint32_t dropout_seed;  // the step's seed (dropoutStepSeed), as StepDropout.seed
};

struct StepResult {
  float loss, grad_norm;
};

struct ModelOptions {
  Dtype dtype = Dtype::F32;      // activations: F32 (parity) or BF16 (mixed precision)
  int max_batch = 1;             // sequences per micro-batch the buffers are sized for
  bool recompute = false;        // recompute GELU inputs in backward instead of storing them
  GemmImpl gemm = GemmImpl::Auto;
};

class GptModel {
 public:
  // Throws std::invalid_argument for an inconsistent config or layout, std::runtime_error
  // (with the CUDA error's text) when the device cannot hold it.
  GptModel(ModelDims dims, std::vector<TensorSlot> layout, ModelOptions options);
  ~GptModel();
  GptModel(const GptModel&) = delete;
  GptModel& operator=(const GptModel&) = delete;

  size_t num_params() const;  // in the flat layout (the vocabulary unpadded)
  // Device bytes this model allocated, and those recompute saved (0 without it).
  size_t device_bytes() const;
  size_t recompute_saved_bytes() const;
  // Bytes a model of these dims would allocate, without allocating.
  static size_t plan_bytes(const ModelDims& dims, const ModelOptions& options);

  // params/m/v: num_params() f32 in the flat layout; m and v null: zeros. step: AdamW's t so far.
  void load(const float* params, const float* m, const float* v, int step);
  // inputs/targets: micro_batches * B * T token ids, micro-batch major. B <= max_batch, T <= block.
  StepResult step(const int* inputs, const int* targets, int B, int T, int micro_batches, const StepHyperParams& hp);
  float loss(const int* inputs, const int* targets, int B, int T, int micro_batches);
  // Logits (vocab f32) at the last of T context tokens.
  void logits(const int* context, int T, float* out);
  void save(float* params, float* m, float* v, int* step) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace kiln
