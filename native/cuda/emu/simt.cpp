// The SIMT emulation's runtime: fibers, barriers, warp collectives and launch checks (the
// host runtime functions are in runtime.cpp). See simt.h for the model.
#include "simt.h"
#include "simt_internal.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

// Fiber switches: a few instructions on x86-64; ucontext elsewhere (or with
// -DKILN_EMU_UCONTEXT), whose swapcontext makes a sigprocmask system call per switch, which
// would dominate a block of 1024 threads crossing thousands of barriers.
#if defined(__x86_64__) && !defined(KILN_EMU_UCONTEXT)
#define KILN_EMU_ASM_SWITCH 1
#else
#define KILN_EMU_ASM_SWITCH 0
#include <ucontext.h>
#endif

// AddressSanitizer (-fsanitize=address) works on the emulation, which makes it a memcheck
// for kernels without a GPU (device buffers are heap blocks of their exact size), provided
// it is told about every stack switch and that a reused stack holds no stale redzones.
#if defined(__SANITIZE_ADDRESS__)
#define KILN_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#else
#define KILN_EMU_ASAN 0
#endif

#if KILN_EMU_ASM_SWITCH
// void kiln_emu_switch(void** save_sp, void* load_sp): pushes the callee-saved general
// registers (System V ABI: rbx, rbp, r12-r15), stores rsp in *save_sp, loads load_sp and
// pops the other context's. The MXCSR and x87 control words, callee-saved too, are left
// alone: kernel code has no way to change them, so every fiber runs with the launching
// thread's. A new fiber's stack is laid out as if it had called kiln_emu_switch, with
// kiln_emu_fiber_entry as the return address.
extern "C" void kiln_emu_switch(void** save_sp, void* load_sp);
asm(R"(
  .text
  .globl kiln_emu_switch
  .hidden kiln_emu_switch
  .type kiln_emu_switch, @function
  .p2align 4
kiln_emu_switch:
  .cfi_startproc
  endbr64
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size kiln_emu_switch, .-kiln_emu_switch
)");
#endif

const int warpSize = 32;

namespace kiln_emu {
namespace detail {

__thread const ThreadView* current = nullptr;

void not_in_kernel(const char* what) {
  fprintf(stderr, "kiln_emu: %s used outside a kernel launch\n", what);
  abort();
}

// Errors: the last error per host thread (cudaGetLastError, as CUDA keeps it), and launch
// failures also wait for the next synchronize from any thread (runtime.cpp reports them).
thread_local cudaError_t last_error = cudaSuccess;
std::mutex async_mutex;
std::string failure_text;  // the latest launch failure's description
namespace {
cudaError_t async_error = cudaSuccess;
}  // namespace

cudaError_t take_async_error() {
  std::lock_guard<std::mutex> lock(async_mutex);
  cudaError_t e = async_error;
  async_error = cudaSuccess;
  return e;
}

namespace {

constexpr unsigned kMaxThreads = 1024;

const size_t kPage = (size_t)sysconf(_SC_PAGESIZE);

// Fiber stacks: 64 KiB (KILN_EMU_STACK_KB overrides), each mmap'd with a PROT_NONE guard
// page below it, so an overflow faults at once instead of corrupting a neighbour.
size_t stack_bytes() {
  static const size_t bytes = [] {
    size_t kb = 64;
    if (const char* env = getenv("KILN_EMU_STACK_KB")) {
      long v = strtol(env, nullptr, 10);
      if (v >= 16) kb = (size_t)v;
    }
    return (kb * 1024 + kPage - 1) / kPage * kPage;
  }();
  return bytes;
}

// A fiber takes a stack when it first runs and gives it back when it returns, so a block
// whose threads never wait (elementwise kernels) cycles through two warm stacks instead of
// touching one per thread. Stacks are never unmapped; the pool grows to the most fibers
// ever suspended at once.
std::vector<char*> free_stacks;  // stack tops, most recently freed last

char* take_stack() {
  if (!free_stacks.empty()) {
    char* top = free_stacks.back();
    free_stacks.pop_back();
    return top;
  }
  const size_t bytes = stack_bytes();
  void* p = mmap(nullptr, bytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  mprotect(p, kPage, PROT_NONE);
  return static_cast<char*>(p) + kPage + bytes;
}

enum class State : uint8_t { Fresh, Ready, AtSync, AtWarp, Done };

struct AsyncCopy {
  void* dst;
  const void* src;
  int src_bytes;  // of 16; the rest is zero-filled
};

struct Fiber {
  void* sp = nullptr;         // saved stack pointer while switched out (asm switch)
  char* stack_top = nullptr;  // while it has a stack (from its first run until it returns)
#if !KILN_EMU_ASM_SWITCH
  ucontext_t uc;
#endif
  ThreadView view;
  unsigned linear = 0;  // thread index within the block, x fastest
  State state = State::Fresh;
  const WarpOp* wait_op = nullptr;  // while AtWarp
  unsigned wait_mask = 0;
  // cp.async issued and not yet waited for; group_ends[g] = end of committed group g in it.
  std::vector<AsyncCopy> copies;
  std::vector<size_t> group_ends;
};

// Lanes of one warp waiting at one collective (one mask).
struct WarpGroup {
  const WarpOp* op;
  unsigned mask;
  unsigned arrived;
  void* args[32];
};

struct Warp {
  unsigned gone = 0;               // lanes that exited, or do not exist in a partial last warp
  std::vector<WarpGroup> pending;  // at most one per disjoint mask; usually zero or one
};

struct Launch {
  const LaunchSpec* spec = nullptr;
  BlockView block;
  std::vector<Fiber> fibers;
  std::vector<Warp> warps;
  std::vector<unsigned> ready;  // ring buffer of fiber indices
  size_t head = 0, count = 0;
  std::vector<unsigned> at_sync;
  unsigned live = 0;
  Fiber* running = nullptr;
  // The stack of a fiber that returned, given back by whichever context runs next (the
  // fiber is still on it until the switch away).
  char* zombie = nullptr;
  void* main_sp = nullptr;
#if !KILN_EMU_ASM_SWITCH
  ucontext_t main_uc;
#endif
#if KILN_EMU_ASAN
  const void* main_stack_bottom = nullptr;  // the launching thread's stack, for ASan
  size_t main_stack_size = 0;
  bool from_main = false;  // the switch under way leaves the launch loop
#endif
  bool reverse = false;  // KILN_EMU_REVERSE: threads start, and are released, highest first
  bool failed = false;
  std::string error;
};

// One launch at a time, process-wide: `__shared__` is static, so two blocks of one kernel
// must never run at once, whichever threads launched them.
std::mutex launch_mutex;
Launch* the_launch = nullptr;  // set while a launch runs (under launch_mutex)

std::mutex attr_mutex;
std::map<AnyFn, size_t> max_dynamic_shared;

void record_failure(const std::string& text) {
  std::lock_guard<std::mutex> lock(async_mutex);
  async_error = cudaErrorLaunchFailure;
  failure_text = text;
  last_error = cudaErrorLaunchFailure;
}

void push_ready(Launch& L, unsigned i) {
  L.ready[(L.head + L.count) % L.ready.size()] = i;
  ++L.count;
}

std::string thread_name(const Fiber& f) {
  char buf[64];
  snprintf(buf, sizeof buf, "thread (%u,%u,%u)", f.view.thread_idx.x, f.view.thread_idx.y, f.view.thread_idx.z);
  return buf;
}

std::string where(const Launch& L) {
  char buf[96];
  snprintf(buf, sizeof buf, " block (%u,%u,%u)", L.block.block_idx.x, L.block.block_idx.y, L.block.block_idx.z);
  return std::string("kernel ") + L.spec->name + buf;
}

void fiber_main();
#if KILN_EMU_ASM_SWITCH
extern "C" [[noreturn]] void kiln_emu_fiber_entry() {
  fiber_main();
  abort();  // fiber_main never returns
}
#endif

void release_zombie(Launch& L) {
  if (L.zombie) {
    free_stacks.push_back(L.zombie);
    L.zombie = nullptr;
  }
}

// Runs in whichever context a switch lands in (fake_stack: ASan's, saved by this context
// when it switched away; null in a fresh fiber).
void resumed(Launch& L, void* fake_stack) {
#if KILN_EMU_ASAN
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
  if (L.from_main) {  // learn the launch loop's stack, to switch back to it
    L.main_stack_bottom = bottom;
    L.main_stack_size = size;
  }
#else
  (void)fake_stack;
#endif
  release_zombie(L);  // the fiber we came from may have returned
}

// Gives a fiber about to run for the first time its stack and initial context; false when
// no stack can be mapped.
bool start_fiber(Launch& L, Fiber& f) {
  f.stack_top = take_stack();
  if (!f.stack_top) return false;
#if KILN_EMU_ASAN
  // The stack's last owner may have been abandoned mid-call (a failed launch) or returned
  // past frames whose redzones ASan still has poisoned.
  __asan_unpoison_memory_region(f.stack_top - stack_bytes(), stack_bytes());
#endif
#if KILN_EMU_ASM_SWITCH
  (void)L;
  // The frame kiln_emu_switch pops (r15, r14, r13, r12, rbx, rbp), the return address it
  // jumps to, and a null return address for kiln_emu_fiber_entry, which the System V ABI
  // wants to find at rsp % 16 == 8 on entry.
  uint64_t* sp = reinterpret_cast<uint64_t*>(f.stack_top) - 8;
  for (int i = 0; i < 6; ++i) sp[i] = 0;
  sp[6] = reinterpret_cast<uint64_t>(&kiln_emu_fiber_entry);
  sp[7] = 0;
  f.sp = sp;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack_top - stack_bytes();
  f.uc.uc_stack.ss_size = stack_bytes();
  f.uc.uc_link = &L.main_uc;
  makecontext(&f.uc, fiber_main, 0);
#endif
  f.state = State::Ready;
  return true;
}

// Switches from the running fiber (or from the launch loop, when from is null) to `to`, or
// back to the launch loop when `to` is null.
void switch_to(Launch& L, Fiber* from, Fiber* to) {
  if (to && to->state == State::Fresh && !start_fiber(L, *to)) {
    // Out of memory: back to the launch loop, which reports it.
    if (!L.failed) {
      L.failed = true;
      L.error = where(L) + ": no memory for another fiber stack (mmap failed)";
    }
    if (!from) return;
    to = nullptr;
  }
  L.running = to;
  current = to ? &to->view : nullptr;
  void* fake_stack = nullptr;
#if KILN_EMU_ASAN
  // A fiber that returned or failed is never resumed: ASan may drop its fake stack.
  const bool abandoned = from && (from->state == State::Done || L.failed);
  __sanitizer_start_switch_fiber(abandoned ? nullptr : &fake_stack, to ? to->stack_top - stack_bytes() : L.main_stack_bottom,
                                 to ? stack_bytes() : L.main_stack_size);
  L.from_main = from == nullptr;
#endif
#if KILN_EMU_ASM_SWITCH
  kiln_emu_switch(from ? &from->sp : &L.main_sp, to ? to->sp : L.main_sp);
#else
  swapcontext(from ? &from->uc : &L.main_uc, to ? &to->uc : &L.main_uc);
#endif
  resumed(L, fake_stack);
}

// The running fiber cannot continue: run the next ready fiber, or return to the launch
// loop (which finds the block finished or deadlocked). Returns when this fiber is resumed.
void yield_blocked(Launch& L) {
  Fiber* next = nullptr;
  if (L.count) {
    next = &L.fibers[L.ready[L.head]];
    L.head = (L.head + 1) % L.ready.size();
    --L.count;
  }
  switch_to(L, L.running, next);
}

// Stopping a launch from inside a fiber is two steps: record_failure_here, then abandon
// once the message's temporaries are gone (KILN_EMU_FAIL), since the fiber's frames are
// never unwound: anything they own would leak.
void record_failure_here(Launch& L, const std::string& what) {
  if (!L.failed) {
    L.failed = true;
    L.error = where(L) + ", " + thread_name(*L.running) + ": " + what;
  }
}
// Returns to the launch loop, which never resumes a fiber of the failed block (their stacks
// go back to the pool).
[[noreturn]] void abandon(Launch& L) {
  switch_to(L, L.running, nullptr);
  abort();  // unreachable
}
#define KILN_EMU_FAIL(L, what)        \
  do {                                \
    record_failure_here((L), (what)); \
    abandon(L);                       \
  } while (0)

std::string hex(unsigned v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// "0-3,8,10-11" for the set bits of `bits`.
std::string lanes(unsigned bits) {
  std::string s;
  for (int l = 0; l < 32; ++l) {
    if (!(bits >> l & 1u)) continue;
    int e = l;
    while (e + 1 < 32 && (bits >> (e + 1) & 1u)) ++e;
    if (!s.empty()) s += ",";
    s += std::to_string(l);
    if (e > l) s += "-" + std::to_string(e);
    l = e;
  }
  return s;
}

// In arrival order, which follows the schedule's (increasing, or decreasing with
// KILN_EMU_REVERSE).
void release_sync(Launch& L) {
  for (unsigned i : L.at_sync) {
    L.fibers[i].state = State::Ready;
    push_ready(L, i);
  }
  L.at_sync.clear();
}

// Lands the copies of the oldest `groups` committed groups of f.
void complete_copies(Fiber& f, size_t groups) {
  if (!groups) return;
  const size_t end = f.group_ends[groups - 1];
  for (size_t i = 0; i < end; ++i) {
    const AsyncCopy& c = f.copies[i];
    memcpy(c.dst, c.src, (size_t)c.src_bytes);
    memset(static_cast<unsigned char*>(c.dst) + c.src_bytes, 0, (size_t)(16 - c.src_bytes));
  }
  f.copies.erase(f.copies.begin(), f.copies.begin() + (std::ptrdiff_t)end);
  f.group_ends.erase(f.group_ends.begin(), f.group_ends.begin() + (std::ptrdiff_t)groups);
  for (size_t& e : f.group_ends) e -= end;
}

// Runs on a fiber's own stack from its first switch; never returns.
void fiber_main() {
  Launch& L = *the_launch;
  resumed(L, nullptr);
  Fiber& self = *L.running;
  L.spec->run(L.spec->kernel, L.spec->params);
  // Copies still in flight land eventually on a GPU: land them now (reading them without a
  // wait was already wrong).
  if (!self.copies.empty()) {
    self.group_ends.push_back(self.copies.size());
    complete_copies(self, self.group_ends.size());
  }
  // The thread returned: it no longer counts at __syncthreads, and lanes that wait for it
  // at a warp collective never will be released.
  self.state = State::Done;
  --L.live;
  const unsigned lane = self.view.lane;
  Warp& w = L.warps[self.linear / 32];
  w.gone |= 1u << lane;
  for (const WarpGroup& g : w.pending)
    if (g.mask >> lane & 1u)
      KILN_EMU_FAIL(L, "exited while lanes " + lanes(g.arrived) + " of its warp wait for it at " + g.op->name + "(mask " + hex(g.mask) + ")");
  if (!L.at_sync.empty() && L.at_sync.size() == L.live) release_sync(L);
  L.zombie = self.stack_top;
  self.stack_top = nullptr;
  yield_blocked(L);
  abort();  // a finished fiber is never resumed
}

std::string describe_deadlock(const Launch& L) {
  // Group threads by what they wait at, in thread order.
  std::vector<std::pair<std::string, std::vector<unsigned>>> groups;
  unsigned exited = 0;
  for (const Fiber& f : L.fibers) {
    std::string at;
    if (f.state == State::AtSync) at = "__syncthreads()";
    else if (f.state == State::AtWarp) at = std::string(f.wait_op->name) + "(mask " + hex(f.wait_mask) + ")";
    else {
      exited += f.state == State::Done;
      continue;
    }
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == at; });
    if (it == groups.end()) groups.push_back({at, {f.linear}});
    else it->second.push_back(f.linear);
  }
  std::string s = where(L) + ": deadlock, no thread can run:";
  for (auto& g : groups) {
    s += " threads ";
    const auto& v = g.second;
    for (size_t i = 0; i < v.size(); ++i) {
      size_t j = i;
      while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
      if (i) s += ",";
      s += std::to_string(v[i]);
      if (j > i) s += "-" + std::to_string(v[j]);
      i = j;
    }
    s += " wait at " + g.first + ";";
  }
  s += " " + std::to_string(exited) + " of " + std::to_string(L.fibers.size()) + " threads exited";
  s += " (threads numbered x + y*blockDim.x + z*blockDim.x*blockDim.y)";
  return s;
}

// Runs one block to completion; false (with L.error) if it failed.
bool run_block(Launch& L) {
  const unsigned n = (unsigned)L.fibers.size();
  L.head = 0;
  L.count = 0;
  L.at_sync.clear();
  L.live = n;
  for (unsigned w = 0; w < L.warps.size(); ++w) {
    L.warps[w].pending.clear();
    const unsigned present = std::min(32u, n - w * 32);
    L.warps[w].gone = present == 32 ? 0u : ~((1u << present) - 1u);
  }
  for (unsigned i = 0; i < n; ++i) {
    L.fibers[i].state = State::Fresh;
    L.fibers[i].wait_op = nullptr;
    L.fibers[i].copies.clear();
    L.fibers[i].group_ends.clear();
    push_ready(L, L.reverse ? n - 1 - i : i);
  }
  if (L.spec->smem) memset(L.block.dynamic_shared, 0xff, L.spec->smem);
  // Run until every fiber has returned, one fails, or none can run.
  Fiber* first = &L.fibers[L.ready[0]];
  L.head = 1;
  L.count = n - 1;
  switch_to(L, nullptr, first);
  bool ok = true;
  if (L.failed) {
    ok = false;
  } else if (L.live != 0) {
    L.error = describe_deadlock(L);
    ok = false;
  }
  // A failed block's fibers are abandoned where they stand: reclaim their stacks.
  for (Fiber& f : L.fibers)
    if (f.stack_top) {
      free_stacks.push_back(f.stack_top);
      f.stack_top = nullptr;
    }
  return ok;
}

}  // namespace

void launch(const LaunchSpec& spec) {
  const dim3 b = spec.block, g = spec.grid;
  const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > kMaxThreads || g.x == 0 ||
      g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  size_t smem_limit = kDefaultSharedLimit;
  {
    std::lock_guard<std::mutex> lock(attr_mutex);
    auto it = max_dynamic_shared.find(spec.kernel);
    if (it != max_dynamic_shared.end()) smem_limit = std::max(smem_limit, it->second);
  }
  if (spec.smem > smem_limit) {
    last_error = cudaErrorInvalidValue;
    return;
  }
  if (current) not_in_kernel("a kernel launch (dynamic parallelism is not emulated)");

  std::lock_guard<std::mutex> lock(launch_mutex);
  const unsigned n = (unsigned)threads;
  Launch L;
  L.spec = &spec;
  const char* order = getenv("KILN_EMU_REVERSE");
  L.reverse = order && *order && strcmp(order, "0") != 0;
  L.fibers.resize(n);
  L.warps.resize((n + 31) / 32);
  L.ready.resize(n);
  L.at_sync.reserve(n);
  std::vector<unsigned char> smem_storage;
  if (spec.smem) {
    smem_storage.resize(spec.smem + 128);
    const uintptr_t p = reinterpret_cast<uintptr_t>(smem_storage.data());
    L.block.dynamic_shared = reinterpret_cast<void*>((p + 127) & ~uintptr_t(127));
  } else {
    // A valid, aligned address even for zero bytes (KILN_DYNAMIC_SHARED is never null).
    alignas(128) static unsigned char empty[128];
    L.block.dynamic_shared = empty;
  }
  L.block.block_dim = b;
  L.block.grid_dim = g;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = L.fibers[i];
    f.linear = i;
    f.view.thread_idx = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
    f.view.lane = i % 32;
    f.view.block = &L.block;
  }
  the_launch = &L;
  bool ok = true;
  for (unsigned z = 0; z < g.z && ok; ++z)
    for (unsigned y = 0; y < g.y && ok; ++y)
      for (unsigned x = 0; x < g.x && ok; ++x) {
        L.block.block_idx = uint3{x, y, z};
        ok = run_block(L);
      }
  the_launch = nullptr;
  current = nullptr;
  if (!ok) record_failure(L.error);
}

}  // namespace detail

using namespace detail;

void warp_collective(const WarpOp& op, unsigned mask, void* arg) {
  if (!current) not_in_kernel(op.name);
  Launch& L = *the_launch;
  Fiber& self = *L.running;
  const unsigned lane = self.view.lane;
  Warp& w = L.warps[self.linear / 32];
  if (!(mask >> lane & 1u)) KILN_EMU_FAIL(L, std::string(op.name) + "(mask " + hex(mask) + ") called by a lane outside its mask");
  if (mask & w.gone)
    KILN_EMU_FAIL(L, std::string(op.name) + "(mask " + hex(mask) + "): lanes " + lanes(mask & w.gone) +
                     " of the mask have exited or do not exist (undefined on a GPU)");
  WarpGroup* group = nullptr;
  for (WarpGroup& g : w.pending)
    if (g.mask == mask) group = &g;
  if (group && group->op != &op)
    KILN_EMU_FAIL(L, std::string(op.name) + "(mask " + hex(mask) + ") while lanes " + lanes(group->arrived) + " wait at " +
                     group->op->name + " with the same mask");
  if (!group) {
    w.pending.push_back(WarpGroup{&op, mask, 0u, {}});
    group = &w.pending.back();
  }
  group->arrived |= 1u << lane;
  group->args[lane] = arg;
  if (group->arrived != mask) {
    self.state = State::AtWarp;
    self.wait_op = &op;
    self.wait_mask = mask;
    yield_blocked(L);
    return;  // the last arriver computed our result
  }
  // Last to arrive: compute every lane's result, release the others, and carry on.
  void* args[32];
  for (int l = 0; l < 32; ++l) args[l] = (mask >> l & 1u) ? group->args[l] : nullptr;
  *group = w.pending.back();
  w.pending.pop_back();
  op.compute(args, mask);
  const unsigned base = self.linear - lane;
  for (unsigned rest = mask & ~(1u << lane); rest;) {
    const unsigned l = L.reverse ? 31u - (unsigned)__builtin_clz(rest) : (unsigned)__builtin_ctz(rest);
    rest &= ~(1u << l);
    const unsigned i = base + l;
    L.fibers[i].state = State::Ready;
    L.fibers[i].wait_op = nullptr;
    push_ready(L, i);
  }
}

void cp_async(void* dst, const void* src, int src_bytes) {
  if (!current) not_in_kernel("cp.async");
  the_launch->running->copies.push_back(AsyncCopy{dst, src, src_bytes});
}

void cp_async_commit() {
  if (!current) not_in_kernel("cp.async.commit_group");
  Fiber& f = *the_launch->running;
  f.group_ends.push_back(f.copies.size());
}

void cp_async_wait(int pending) {
  if (!current) not_in_kernel("cp.async.wait_group");
  Fiber& f = *the_launch->running;
  if (f.group_ends.size() > (size_t)pending) complete_copies(f, f.group_ends.size() - (size_t)pending);
}

void fail(const char* message) {
  if (!current) not_in_kernel(message);
  KILN_EMU_FAIL(*the_launch, message);
}

cudaError_t set_func_attribute(AnyFn kernel, cudaFuncAttribute attr, int value) {
  if (!kernel) return last_error = cudaErrorInvalidDeviceFunction;
  if (attr == cudaFuncAttributePreferredSharedMemoryCarveout)
    return value >= -1 && value <= 100 ? cudaSuccess : (last_error = cudaErrorInvalidValue);
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || (size_t)value > kOptinSharedLimit)
    return last_error = cudaErrorInvalidValue;
  std::lock_guard<std::mutex> lock(attr_mutex);
  max_dynamic_shared[kernel] = (size_t)value;
  return cudaSuccess;
}

}  // namespace kiln_emu

using namespace kiln_emu::detail;

// ---- Device language entry points.
void __syncthreads() {
  if (!current) not_in_kernel("__syncthreads()");
  Launch& L = *the_launch;
  Fiber& self = *L.running;
  if (L.at_sync.size() + 1 == L.live) {
    release_sync(L);  // the last to arrive continues without switching
    return;
  }
  self.state = State::AtSync;
  L.at_sync.push_back(self.linear);
  yield_blocked(L);
}

namespace {
const kiln_emu::WarpOp syncwarp_op{"__syncwarp", [](void* const*, unsigned) {}};

struct VoteArg {
  int pred;
  unsigned result;
};
void ballot_compute(void* const* args, unsigned) {
  unsigned bits = 0;
  for (int l = 0; l < 32; ++l)
    if (args[l] && static_cast<VoteArg*>(args[l])->pred) bits |= 1u << l;
  for (int l = 0; l < 32; ++l)
    if (args[l]) static_cast<VoteArg*>(args[l])->result = bits;
}
const kiln_emu::WarpOp ballot_op{"__ballot_sync", ballot_compute};
const kiln_emu::WarpOp any_op{"__any_sync", ballot_compute};
const kiln_emu::WarpOp all_op{"__all_sync", ballot_compute};
}  // namespace

void __syncwarp(unsigned mask) { kiln_emu::warp_collective(syncwarp_op, mask, nullptr); }

unsigned __ballot_sync(unsigned mask, int predicate) {
  VoteArg a{predicate, 0};
  kiln_emu::warp_collective(ballot_op, mask, &a);
  return a.result;
}
int __any_sync(unsigned mask, int predicate) {
  VoteArg a{predicate, 0};
  kiln_emu::warp_collective(any_op, mask, &a);
  return a.result != 0;
}
int __all_sync(unsigned mask, int predicate) {
  VoteArg a{predicate, 0};
  kiln_emu::warp_collective(all_op, mask, &a);
  return a.result == mask;
}
