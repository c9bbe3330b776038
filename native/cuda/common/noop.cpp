// KILN_CUDA_NOOP=<kernel>: the launches of that one kernel are skipped, so the mutation
// check (scripts/cuda-noop-mutation.sh) can prove each kernel's tests notice a kernel that
// does nothing. The name is the one written in KILN_LAUNCH; whitespace and the parentheses
// around a templated name are ignored, so "layernorm_forward_kernel<T>" matches
// KILN_LAUNCH((layernorm_forward_kernel<T>), ...).
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kiln {

namespace {
std::string normalise(const char* name) {
  std::string s;
  for (const char* p = name; *p; ++p)
    if (*p != ' ' && *p != '\t' && *p != '\n') s += *p;
  if (s.size() >= 2 && s.front() == '(' && s.back() == ')') s = s.substr(1, s.size() - 2);
  return s;
}
}  // namespace

bool noop_kernel(const char* name) {
  // Read once: launches are hot on a GPU, and the variable is set before the process starts.
  static const std::string target = [] {
    const char* v = std::getenv("KILN_CUDA_NOOP");
    return v ? normalise(v) : std::string();
  }();
  if (target.empty() || normalise(name) != target) return false;
  // Said once, so scripts/cuda-noop-mutation.sh can tell a kernel its tests never launch
  // from one whose no-op they fail to notice.
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) std::fprintf(stderr, "kiln: KILN_CUDA_NOOP: skipping the launches of %s\n", target.c_str());
  return true;
}

}  // namespace kiln
