// The SIMT emulation's own tests (native/cuda/emu/tests/): builds kiln_emu_tests with CMake
// and g++ and runs it; and compiles the same kernels (every construct native/cuda/README.md
// allows, plus the tensor-core intrinsics) with nvcc for sm_80 and sm_90, so the two builds
// of the kernel language cannot drift apart. Each part skips, naming why, where its tools
// are missing.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BUILD = join(ROOT, 'build', 'cuda-emu-tests');
const KERNELS = 'native/cuda/emu/tests/kernels.cu';

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** The path of `tool` if it runs here, else null. */
function find(tool: string, candidates: string[] = [tool]): string | null {
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (!r.error && r.status === 0) return c;
  }
  return null;
}

function output(r: SpawnSyncReturns<string>): string {
  return `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`.trim();
}

/** `it`, or a skipped test whose name says why. */
function itWhen(reason: string | null, name: string, fn: (ctx: TestContext) => void, timeout: number): void {
  if (reason) it.skip(`${name}: skipped, ${reason}`, () => {});
  else it(name, fn, timeout);
}

const cmake = find('cmake');
const gxx = find('g++');
const nvcc = find('nvcc', ['nvcc', '/usr/local/bin/nvcc', '/usr/local/cuda/bin/nvcc']);

describe('SIMT emulation (native/cuda/emu)', () => {
  const missing = !cmake ? 'cmake not found' : !gxx ? 'g++ not found' : null;

  itWhen(
    missing,
    'kiln_emu_tests builds with CMake and g++ and every check passes (both thread orders, and under ASan)',
    () => {
      const configure = run(cmake!, ['-S', 'native/cuda/emu', '-B', BUILD, '-DCMAKE_BUILD_TYPE=Release', '-DKILN_EMU_TESTS_ASAN=ON']);
      expect(configure.status, output(configure)).toBe(0);
      const build = run(cmake!, ['--build', BUILD, '-j2']);
      expect(build.status, output(build)).toBe(0);

      // In the default thread order and in the reverse one (KILN_EMU_REVERSE); and under
      // AddressSanitizer where the compiler has it (CMake leaves the target out otherwise).
      const runs: [string, Record<string, string>][] = [
        ['kiln_emu_tests', { KILN_EMU_REVERSE: '0' }],
        ['kiln_emu_tests', { KILN_EMU_REVERSE: '1' }],
      ];
      if (existsSync(join(BUILD, 'kiln_emu_tests_asan')))
        runs.push(['kiln_emu_tests_asan', { KILN_EMU_REVERSE: '0', ASAN_OPTIONS: 'detect_leaks=0' }]);
      for (const [name, env] of runs) {
        const exe = spawnSync(join(BUILD, name), [], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
        const text = `${name} ${JSON.stringify(env)}\n${output(exe)}`;
        const lines = (exe.stdout ?? '').split('\n');
        const failed = lines.filter((l) => l.startsWith('FAIL '));
        const passed = lines.filter((l) => l.startsWith('PASS '));
        expect(failed, text).toEqual([]);
        expect(exe.signal, text).toBeNull();
        expect(exe.status, text).toBe(0);
        // Every check ran (a crash or a check dropped from main() would lower the count).
        expect(passed.length, text).toBeGreaterThanOrEqual(25);
        for (const check of [
          'divergent __syncthreads: deadlock reported, not hung',
          'ldmatrix x4/x2, plain and .trans, per the PTX layout',
          'mma.sync m16n8k16 bf16 on known matrices',
          '32x16x32 GEMM from cp.async + ldmatrix + mma',
          'every README construct, KILN_LAUNCH((k<float, 4>), ...)',
        ])
          expect(passed, text).toContain(`PASS ${check}`);
      }
    },
    300_000,
  );
});

// The PTX behind each intrinsic and device function, found in the kernels' device code.
const PTX_INSTRUCTIONS = [
  'cp.async.cg.shared.global',
  'cp.async.commit_group',
  'cp.async.wait_group 0',
  'ldmatrix.sync.aligned.m8n8.x4.shared.b16',
  'ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16',
  'mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32',
  'shfl.sync.bfly.b32',
  'shfl.sync.down.b32',
  'shfl.sync.up.b32',
  'shfl.sync.idx.b32',
  'vote.sync.ballot.b32',
  'bar.sync',
];

describe('the same kernels under nvcc', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-emu-nvcc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const noNvcc = nvcc ? null : 'nvcc not found';
  let gpuTests: string | null = null;

  function compile(arch: string, args: string[]): string {
    const keep = join(dir, arch);
    mkdirSync(keep, { recursive: true });
    const r = run(nvcc!, ['-std=c++17', `-arch=${arch}`, '-I', 'native/cuda', ...args, '--keep', '--keep-dir', keep]);
    expect(r.status, output(r)).toBe(0);
    return readFileSync(join(keep, 'kernels.ptx'), 'utf8');
  }

  itWhen(
    noNvcc,
    `${KERNELS} and common/intrinsics.cuh compile for sm_90, with the PTX instructions emulated`,
    () => {
      const ptx = compile('sm_90', ['-c', KERNELS, '-o', join(dir, 'kernels.o')]);
      for (const insn of PTX_INSTRUCTIONS) expect(ptx, `PTX lacks ${insn}`).toContain(insn);
    },
    300_000,
  );

  // sm_80 code runs on every GPU the intrinsics support, so this build is also the one that
  // checks the emulation against the hardware where a GPU is present.
  itWhen(
    noNvcc,
    `emu_tests.cpp and ${KERNELS} build for sm_80 as a CUDA program, with the PTX instructions emulated`,
    () => {
      const exe = join(dir, 'kiln_emu_tests_gpu');
      const ptx = compile('sm_80', ['-x', 'cu', 'native/cuda/emu/tests/emu_tests.cpp', KERNELS, '-o', exe]);
      for (const insn of PTX_INSTRUCTIONS) expect(ptx, `PTX lacks ${insn}`).toContain(insn);
      gpuTests = exe;
    },
    300_000,
  );

  itWhen(
    noNvcc,
    'on a GPU, the emulation-independent checks pass on the hardware too (layouts, limits, shuffles)',
    (ctx) => {
      if (!gpuTests) throw new Error('the sm_80 build above failed');
      const r = spawnSync(gpuTests, [], { encoding: 'utf8', timeout: 120_000 });
      if (r.status === 77) {
        ctx.skip(`no GPU here (${(r.stdout ?? '').trim()})`);
        return;
      }
      const text = output(r);
      expect((r.stdout ?? '').split('\n').filter((l) => l.startsWith('FAIL ')), text).toEqual([]);
      expect(r.status, text).toBe(0);
    },
    180_000,
  );
});
