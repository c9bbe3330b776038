// cuBLASLt behind kernels.h's matmul(..., GemmImpl::CublasLt): compiled only where the
// build found cuBLASLt (CMake's CUDA::cublasLt, or the path a user gives) and defines
// KILN_HAVE_CUBLASLT. CI's toolkit has no cuBLAS, so this file is empty there and in the
// emulation build; it is written from the cuBLASLt documentation and first compiles and
// runs on a GPU visit (tests/cuda/matmul.test.ts then runs every case on it too).
//
// Row-major through column-major: a row-major (R, C) matrix with row stride ld is the
// column-major (C, R) matrix with leading dimension ld, i.e. its transpose. So the row-major
// product C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T: cuBLASLt's
// "A" is our B and its "B" is our A, each with its own transpose flag unchanged, and D is
// column-major (N, M) with leading dimension ldc. The bias epilogue broadcasts a vector over
// D's columns, one value per row of D: per column of our C, as kernels.h's bias.
#include "kernels.h"  // first: it defines KILN_EMU

#if defined(KILN_HAVE_CUBLASLT) && !KILN_EMU

#include <cublasLt.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

namespace kiln {

namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;

void check_lt(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cuBLASLt: ") + what + ": " + cublasLtGetStatusString(st));
}
void check_rt(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("cuBLASLt setup: ") + what + ": " + cudaGetErrorString(err));
}

// The largest power of two <= 256 dividing the address: cuBLASLt's heuristic assumes
// 256-byte aligned operands unless told otherwise (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*),
// and our operands are often views into larger buffers (a layer's weights, q/k/v).
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align) align >>= 1;
  return align;
}

// Where cuBLASLt offers no bias epilogue for a combination (f32 bias into a bf16 D is not
// in every version's table), or the bias is not 16-byte aligned, the bias is added after
// the product by this kernel: one extra pass over C, exact in f32 for f32 C.
template <class TC>
__global__ void add_bias_kernel(TC* C, const float* bias, int M, int N, int ldc) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= N) return;
  const float b = bias[col];
  for (int row = blockIdx.y; row < M; row += gridDim.y) {
    const size_t i = (size_t)row * ldc + col;
    C[i] = from_float<TC>(to_float(C[i]) + b);
  }
}

template <class TC>
void add_bias(const Gemm& g, cudaStream_t s) {
  const dim3 grid((g.N + 255) / 256, min(g.M, 65535));
  KILN_LAUNCH((add_bias_kernel<TC>), grid, dim3(256), 0, s, static_cast<TC*>(g.C), g.bias, g.M, g.N, g.ldc);
}

struct Key {
  int ab, c, transA, transB, M, N, K, lda, ldb, ldc, bias, accumulate;
  uint32_t alignA, alignB, alignC;
  bool operator<(const Key& o) const {
    return std::tie(ab, c, transA, transB, M, N, K, lda, ldb, ldc, bias, accumulate, alignA, alignB, alignC) <
           std::tie(o.ab, o.c, o.transA, o.transB, o.M, o.N, o.K, o.lda, o.ldb, o.ldc, o.bias, o.accumulate, o.alignA, o.alignB, o.alignC);
  }
};

// Descriptors and the heuristic's algorithm for one shape, built once: creating them and
// asking the heuristic costs tens of microseconds, more than a small GEMM.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's A (our B), B (our A), C = D
  cublasLtMatmulAlgo_t algo;
  size_t workspace = 0;
  bool bias_epilogue = false;
  bool proven = false;  // has run once: a failure after that is an error, not a fallback
};

struct State {
  std::mutex mu;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<Key, Plan> plans;
};

State& state() {
  // Never destroyed: descriptors and the handle must not be torn down after the CUDA
  // runtime at process exit; the OS reclaims them.
  static State* s = new State();
  return *s;
}

cudaDataType_t cuda_type(Dtype d) { return d == Dtype::F32 ? CUDA_R_32F : CUDA_R_16BF; }

void destroy_plan(Plan& plan) {
  if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
  if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
  if (plan.c) cublasLtMatrixLayoutDestroy(plan.c);
  if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  plan = Plan();
}

// Builds the descriptors; returns false when the heuristic finds no algorithm.
bool build_plan(State& st, const Gemm& g, const Key& key, bool bias_epilogue, Plan& plan) {
  check_lt(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t opA = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  const cublasOperation_t opB = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)), "TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)), "TRANSB");
  const cublasLtEpilogue_t epi = bias_epilogue ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  check_lt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "EPILOGUE");
  if (bias_epilogue) {
    // Our biases are f32 parameters whatever C's dtype (the default would be D's type).
    const cudaDataType_t bias_type = CUDA_R_32F;
    check_lt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof(bias_type)),
             "BIAS_DATA_TYPE");
    // A placeholder pointer for the heuristic; the real one is set on every call.
    const void* bias = g.bias;
    check_lt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "BIAS_POINTER");
  }
  // Layouts describe the matrices as stored (before op), column-major.
  const cudaDataType_t ab = cuda_type(g.ab);
  // Our B stored row-major (K,N) [or (N,K) when transB] = column-major (N,K) [or (K,N)].
  check_lt(cublasLtMatrixLayoutCreate(&plan.a, ab, g.transB ? g.K : g.N, g.transB ? g.N : g.K, g.ldb), "layout A");
  // Our A stored row-major (M,K) [or (K,M)] = column-major (K,M) [or (M,K)].
  check_lt(cublasLtMatrixLayoutCreate(&plan.b, ab, g.transA ? g.M : g.K, g.transA ? g.K : g.M, g.lda), "layout B");
  check_lt(cublasLtMatrixLayoutCreate(&plan.c, cuda_type(g.c), g.N, g.M, g.ldc), "layout C");

  cublasLtMatmulPreference_t pref;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
  const uint64_t ws = kWorkspaceBytes;
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)), "MAX_WORKSPACE_BYTES");
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.alignB, sizeof(uint32_t)),
           "MIN_ALIGNMENT_A_BYTES");
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.alignA, sizeof(uint32_t)),
           "MIN_ALIGNMENT_B_BYTES");
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.alignC, sizeof(uint32_t)),
           "MIN_ALIGNMENT_C_BYTES");
  check_lt(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.alignC, sizeof(uint32_t)),
           "MIN_ALIGNMENT_D_BYTES");
  cublasLtMatmulHeuristicResult_t result = {};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(st.handle, plan.desc, plan.a, plan.b, plan.c, plan.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (hs != CUBLAS_STATUS_SUCCESS || found < 1) {
    destroy_plan(plan);
    return false;
  }
  plan.algo = result.algo;
  plan.workspace = result.workspaceSize;
  plan.bias_epilogue = bias_epilogue;
  return true;
}

}  // namespace

void matmul_cublaslt(const Gemm& g, cudaStream_t s) {
  State& st = state();
  // One lock around plan lookup, the per-call bias pointer and the launch: plans are
  // shared, and the one workspace assumes calls are ordered (the model issues every GEMM on
  // one stream).
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.handle) {
    check_lt(cublasLtCreate(&st.handle), "cublasLtCreate");
    check_rt(cudaMalloc(&st.workspace, kWorkspaceBytes), "cudaMalloc(workspace)");
  }
  const bool has_bias = g.bias != nullptr;
  const Key key{(int)g.ab, (int)g.c, g.transA, g.transB, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, has_bias, g.accumulate,
                alignment_of(g.A), alignment_of(g.B), alignment_of(g.C)};
  auto it = st.plans.find(key);
  if (it == st.plans.end()) {
    Plan plan;
    const bool bias_ok = has_bias && reinterpret_cast<uintptr_t>(g.bias) % 16 == 0;
    if (!(bias_ok && build_plan(st, g, key, true, plan)) && !build_plan(st, g, key, false, plan))
      throw std::runtime_error("cuBLASLt: no algorithm for M " + std::to_string(g.M) + ", N " + std::to_string(g.N) + ", K " +
                               std::to_string(g.K) + " (" + (g.ab == Dtype::BF16 ? "bf16" : "f32") + " operands)");
    it = st.plans.emplace(key, plan).first;
  }
  Plan& plan = it->second;
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  auto run = [&]() {
    if (plan.bias_epilogue) {
      const void* bias = g.bias;
      check_lt(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "BIAS_POINTER");
    }
    return cublasLtMatmul(st.handle, plan.desc, &alpha, g.B, plan.a, g.A, plan.b, &beta, g.C, plan.c, g.C, plan.c, &plan.algo,
                          st.workspace, plan.workspace, s);
  };
  cublasStatus_t status = run();
  if (status != CUBLAS_STATUS_SUCCESS && !plan.proven && plan.bias_epilogue) {
    // The heuristic offered an algorithm that then refused this bias type: plan again
    // without the epilogue (the bias then comes from add_bias_kernel).
    destroy_plan(plan);
    if (!build_plan(st, g, key, false, plan)) {
      st.plans.erase(it);
      check_lt(status, "cublasLtMatmul");
    }
    status = run();
  }
  check_lt(status, "cublasLtMatmul");
  plan.proven = true;
  if (has_bias && !plan.bias_epilogue) {
    if (g.c == Dtype::F32) add_bias<float>(g, s);
    else add_bias<bf16>(g, s);
  }
}

}  // namespace kiln

#endif  // KILN_HAVE_CUBLASLT
