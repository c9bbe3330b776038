// The SIMT emulation's host runtime: memory, copies, streams, events, errors and device
// properties, on the CPU (simt.cpp runs the kernels). See simt.h for the model.
#include "simt.h"
#include "simt_internal.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

using namespace kiln_emu::detail;

namespace {
// Runtime calls that fail also set the host thread's last error, as CUDA's do.
cudaError_t failed_call(cudaError_t e) {
  last_error = e;
  return e;
}
}  // namespace

// ---- Host runtime. Device memory is host memory, 256-byte aligned as cudaMalloc's is.
struct CUstream_st {
  unsigned flags;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point t;
  bool recorded = false;
};

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) {
    return failed_call(cudaErrorInvalidValue);
  }
  if (bytes == 0) {
    *ptr = nullptr;
    return cudaSuccess;
  }
  // 256-byte aligned as cudaMalloc's are, and of the exact size, so that under ASan a
  // kernel reading one element past a buffer is caught.
  void* p = nullptr;
  if (posix_memalign(&p, 256, bytes) != 0) {
    *ptr = nullptr;
    return failed_call(cudaErrorMemoryAllocation);
  }
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMallocHost(void** ptr, size_t bytes) { return cudaMalloc(ptr, bytes); }
cudaError_t cudaFreeHost(void* ptr) { return cudaFree(ptr); }

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if ((unsigned)kind > (unsigned)cudaMemcpyDefault) {
    return failed_call(cudaErrorInvalidMemcpyDirection);
  }
  if (bytes && (!dst || !src)) {
    return failed_call(cudaErrorInvalidValue);
  }
  if (bytes) memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (bytes && !ptr) {
    return failed_call(cudaErrorInvalidValue);
  }
  if (bytes) memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) { return cudaMemset(ptr, value, bytes); }

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (!stream) return failed_call(cudaErrorInvalidValue);
  *stream = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return failed_call(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}
// Work is synchronous, so a synchronize only reports what failed since the last one.
cudaError_t cudaStreamSynchronize(cudaStream_t) { return take_async_error(); }
cudaError_t cudaDeviceSynchronize() { return take_async_error(); }

cudaError_t cudaGetLastError() {
  cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return last_error; }

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
#define KILN_EMU_NAME(e) \
  case e:                \
    return #e;
    KILN_EMU_NAME(cudaSuccess)
    KILN_EMU_NAME(cudaErrorInvalidValue)
    KILN_EMU_NAME(cudaErrorMemoryAllocation)
    KILN_EMU_NAME(cudaErrorInitializationError)
    KILN_EMU_NAME(cudaErrorInvalidConfiguration)
    KILN_EMU_NAME(cudaErrorInvalidMemcpyDirection)
    KILN_EMU_NAME(cudaErrorInvalidDeviceFunction)
    KILN_EMU_NAME(cudaErrorNoDevice)
    KILN_EMU_NAME(cudaErrorInvalidDevice)
    KILN_EMU_NAME(cudaErrorInvalidResourceHandle)
    KILN_EMU_NAME(cudaErrorNotReady)
    KILN_EMU_NAME(cudaErrorIllegalAddress)
    KILN_EMU_NAME(cudaErrorLaunchOutOfResources)
    KILN_EMU_NAME(cudaErrorMisalignedAddress)
    KILN_EMU_NAME(cudaErrorLaunchFailure)
    KILN_EMU_NAME(cudaErrorNotSupported)
    KILN_EMU_NAME(cudaErrorUnknown)
#undef KILN_EMU_NAME
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorUnknown: return "unknown error";
    case cudaErrorLaunchFailure: {
      // The emulation knows why a launch failed: say so (kernel, block, what threads wait at).
      thread_local std::string text;
      std::lock_guard<std::mutex> lock(async_mutex);
      text = "unspecified launch failure";
      if (!failure_text.empty()) text += " (SIMT emulation: " + failure_text + ")";
      return text.c_str();
    }
  }
  return "unrecognized error code";
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return failed_call(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (free_bytes) *free_bytes = (size_t)sysconf(_SC_AVPHYS_PAGES) * page;
  if (total_bytes) *total_bytes = (size_t)sysconf(_SC_PHYS_PAGES) * page;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return failed_call(cudaErrorInvalidValue);
  if (device != 0) return failed_call(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "%s", "SIMT emulation (CPU)");
  cudaMemGetInfo(nullptr, &prop->totalGlobalMem);
  prop->sharedMemPerBlock = kDefaultSharedLimit;
  prop->sharedMemPerBlockOptin = kOptinSharedLimit;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->major = 8;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->unifiedAddressing = 1;
  prop->integrated = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : failed_call(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  if (!device) return failed_call(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

// Events time the host: launches run synchronously, so the span between two records is the
// emulated work between them.
cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  if (!event) return failed_call(cudaErrorInvalidValue);
  *event = new CUevent_st{};
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (!event) return failed_call(cudaErrorInvalidResourceHandle);
  event->t = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) { return event ? cudaSuccess : cudaErrorInvalidResourceHandle; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return failed_call(cudaErrorInvalidValue);
  if (!start || !end) return failed_call(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded) return failed_call(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return failed_call(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}
