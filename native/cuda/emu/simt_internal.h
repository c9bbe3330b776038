// Private to the emulation's two sources: what the launch machinery (simt.cpp) records and
// the host runtime (runtime.cpp) reports. Kernel code never includes it.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>

#include "simt.h"

namespace kiln_emu {
namespace detail {

constexpr size_t kDefaultSharedLimit = 48 * 1024;
constexpr size_t kOptinSharedLimit = 227 * 1024;  // sm_90's opt-in maximum per block

// The last error per host thread (cudaGetLastError, as CUDA keeps it).
extern thread_local cudaError_t last_error;
// The latest launch failure's description, under async_mutex.
extern std::mutex async_mutex;
extern std::string failure_text;
// The launch failure since the last synchronize (from any thread), cleared.
cudaError_t take_async_error();

}  // namespace detail
}  // namespace kiln_emu
