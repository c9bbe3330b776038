#!/usr/bin/env node
// npm run build:cuda: configures and builds the CUDA addon (native/cuda/) with CMake,
//   build/cuda-emu/kiln_cuda_emu.node  the SIMT emulation flavour (CMake + a C++ compiler)
//   build/cuda/kiln_cuda.node          the cuda flavour (CMake + nvcc)
// Incremental: an up-to-date build costs a second. Prints one line per flavour: built,
// skipped (and what is missing), or failed. Exits non-zero only when a flavour whose
// tools are all here failed to build.
//
//   node scripts/build-cuda.mjs [--flavour emu|cuda|all] [--quiet]
//
// Environment: KILN_CUDA_ARCHS ("80;90"), KILN_CUBLASLT_DIR (cuBLASLt outside the
// toolkit), CUDACXX (nvcc's path), CXX (the C++ compiler); see native/cuda/CMakeLists.txt.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import lockfile from 'proper-lockfile';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE = join(ROOT, 'native/cuda');
const JOBS = process.env.KILN_BUILD_JOBS ?? '2';

const FLAVOURS = {
  emu: { dir: 'build/cuda-emu', file: 'kiln_cuda_emu.node', label: 'emulation' },
  cuda: { dir: 'build/cuda', file: 'kiln_cuda.node', label: 'cuda' },
};

function usage(message) {
  process.stderr.write(`build-cuda: ${message}\nusage: node scripts/build-cuda.mjs [--flavour emu|cuda|all] [--quiet]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  let flavour = 'all';
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quiet') quiet = true;
    else if (a === '--flavour') flavour = argv[++i];
    else if (a.startsWith('--flavour=')) flavour = a.slice('--flavour='.length);
    else usage(`unknown argument ${a}`);
  }
  if (!['emu', 'cuda', 'all'].includes(flavour)) usage(`--flavour must be emu, cuda or all, not ${flavour}`);
  return { flavours: flavour === 'all' ? ['emu', 'cuda'] : [flavour], quiet };
}

/** Whether `cmd args` runs and exits 0 (a tool's presence). */
function runs(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

/** The first nvcc that runs: $CUDACXX, then PATH, then the toolkit's usual homes. */
function findNvcc() {
  const candidates = [process.env.CUDACXX, 'nvcc', '/usr/local/cuda/bin/nvcc', '/opt/cuda/bin/nvcc'].filter(Boolean);
  return candidates.find((c) => runs(c));
}

/** What is missing to build `flavour`, or null; and the CMake -D options it needs. */
function prerequisites(flavour) {
  const cmake = spawnSync('cmake', ['--version'], { encoding: 'utf8' });
  if (cmake.error || cmake.status !== 0) return { missing: 'no cmake (install CMake >= 3.24)' };
  const [major, minor] = (/(\d+)\.(\d+)/.exec(cmake.stdout) ?? []).slice(1).map(Number);
  if (!(major > 3 || (major === 3 && minor >= 24))) return { missing: `cmake ${major}.${minor} is too old (install CMake >= 3.24)` };
  const cxx = process.env.CXX || 'c++';
  if (!runs(cxx)) return { missing: `no C++ compiler (${cxx}; install g++ or set CXX)` };
  if (!existsSync(join(ROOT, 'node_modules/node-addon-api')) || !existsSync(join(ROOT, 'node_modules/node-api-headers')))
    return { missing: 'no node-addon-api / node-api-headers in node_modules (run npm install)' };
  const defs = [`-DKILN_FLAVOUR=${flavour}`, '-DCMAKE_BUILD_TYPE=Release'];
  if (flavour === 'cuda') {
    const nvcc = findNvcc();
    if (!nvcc) return { missing: 'no nvcc (install the CUDA toolkit, or set CUDACXX to its nvcc)' };
    defs.push(`-DCMAKE_CUDA_COMPILER=${nvcc}`);
    // Always passed, so that unsetting one takes effect on the next build (CMake's cache
    // would otherwise keep the old value).
    defs.push(`-DKILN_CUDA_ARCHS=${process.env.KILN_CUDA_ARCHS || '80;90'}`);
    defs.push(`-DKILN_CUBLASLT_DIR=${process.env.KILN_CUBLASLT_DIR ?? ''}`);
  }
  return { missing: null, defs };
}

/**
 * Runs a build command; its output goes to the terminal, or is kept for a failure when
 * quiet. Asynchronous, so the build lock's heartbeat keeps running during a long compile.
 */
function step(cmd, args, quiet) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: quiet ? 'pipe' : 'inherit' });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    child.on('error', (e) => resolve(`${cmd}: ${e.message}`));
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(null);
      if (quiet) process.stderr.write(output);
      resolve(`${cmd} ${args[0]} exited ${code ?? signal}`);
    });
  });
}

/**
 * One build of a folder at a time: test runs started side by side (each vitest's global
 * setup builds the emulation flavour) would otherwise run two ninjas on the same files.
 */
async function withBuildLock(dir, fn) {
  mkdirSync(dir, { recursive: true });
  const release = await lockfile.lock(dir, {
    retries: { retries: 1800, minTimeout: 500, maxTimeout: 1000 },
    onCompromised: (e) => process.stderr.write(`build-cuda: the build lock on ${dir} was lost: ${e.message}\n`),
  });
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

async function build(flavour, quiet) {
  const f = FLAVOURS[flavour];
  const pre = prerequisites(flavour);
  if (pre.missing) return { ok: true, line: `${f.label} flavour: skipped: ${pre.missing}` };
  const dir = join(ROOT, f.dir);
  try {
    return await withBuildLock(dir, () => configureAndBuild(f, dir, pre, quiet));
  } catch (e) {
    return { ok: false, line: `${f.label} flavour: FAILED: ${e.message}` };
  }
}

async function configureAndBuild(f, dir, pre, quiet) {
  // Configure again only when the options changed (or never ran): CMake re-runs itself
  // when a CMakeLists.txt or a globbed directory changes.
  const stamp = join(dir, 'kiln-configure.json');
  const wanted = JSON.stringify(pre.defs);
  const configured = existsSync(join(dir, 'CMakeCache.txt')) && existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted;
  if (!configured) {
    const generator = runs('ninja') ? ['-G', 'Ninja'] : [];
    const failed = await step('cmake', ['-S', SOURCE, '-B', dir, ...generator, ...pre.defs], quiet);
    if (failed) return { ok: false, line: `${f.label} flavour: FAILED to configure (${failed})` };
    writeFileSync(stamp, wanted);
  }
  const failed = await step('cmake', ['--build', dir, '-j', JOBS], quiet);
  if (failed) return { ok: false, line: `${f.label} flavour: FAILED to build (${failed})` };
  return { ok: true, line: `${f.label} flavour: built ${join(f.dir, f.file)}` };
}

const { flavours, quiet } = parseArgs(process.argv.slice(2));
let ok = true;
for (const flavour of flavours) {
  const r = await build(flavour, quiet);
  ok &&= r.ok;
  process.stdout.write(`build:cuda: ${r.line}\n`);
}
process.exit(ok ? 0 : 1);
