// vitest globalSetup: builds the CUDA addon's emulation flavour once before any test, so
// tests/cuda/ run on a fresh clone with plain `npm test` (an up-to-date build takes about
// a second). It never stops the run: a machine without CMake or g++ skips the CUDA tests
// with the reason, and a failed build makes them fail with it (tests/cuda/helpers.ts),
// rather than run against a stale build.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

export interface CudaEmuBuild {
  status: 'built' | 'skipped' | 'failed';
  /** build-cuda.mjs's line, and for a failure the end of the compiler's output. */
  detail: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kilnCudaEmuBuild: CudaEmuBuild;
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function buildCudaEmulation(): CudaEmuBuild {
  const r = spawnSync(process.execPath, ['scripts/build-cuda.mjs', '--flavour', 'emu', '--quiet'], { cwd: ROOT, encoding: 'utf8' });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.error) return { status: 'failed', detail: `build-cuda.mjs did not run: ${r.error.message}` };
  if (r.status !== 0) {
    // The first error is what someone fixing it needs; the rest is usually its echo.
    const log = (r.stderr ?? '').split('\n');
    const first = log.findIndex((l) => /error/i.test(l));
    const excerpt = log.slice(Math.max(0, first - 2), first + 12).join('\n');
    return { status: 'failed', detail: `${line}\n${excerpt}` };
  }
  return { status: line.includes('skipped') ? 'skipped' : 'built', detail: line };
}

export default function setup(project: TestProject): void {
  const build = buildCudaEmulation();
  if (build.status !== 'built') process.stderr.write(`${build.detail}\n`);
  project.provide('kilnCudaEmuBuild', build);
}
