// The GPU visit's tooling, checked here so that the visit (bench/gpu/visit.sh, issue #17)
// only has to run when a GPU is lent: its scripts parse, and the CUDA kernel tests,
// bundled onto bench/gpu/mini-vitest.ts as scripts/pack-device.sh bundles them, run and
// report on the emulation flavour, failures included.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addonPath } from '../../src/backends/cuda/addon.ts';

const root = join(import.meta.dirname, '../..');
const esbuild = join(root, 'node_modules/.bin/esbuild');
// Three folders below the root, like src/backends/cuda/addon.ts: the bundle then finds the
// repository's build/ as the unbundled module does.
const outDir = join(root, 'build/visit/bundles');
const BANNER = "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);";

function bundle(entry: string, out: string): void {
  execFileSync(esbuild, ['--bundle', '--platform=node', '--format=esm', '--target=node20', `--outfile=${out}`, '--external:webgpu',
    `--banner:js=${BANNER}`, '--log-level=warning', '--sourcefile=entry.ts', '--loader=ts', '--alias:vitest=./bench/gpu/mini-vitest.ts'],
  { cwd: root, input: entry });
}

function results(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('GPU visit tooling', () => {
  it('the visit scripts parse', () => {
    for (const f of ['visit.sh', 'webgpu.sh', 'lib.sh']) execFileSync('bash', ['-n', join(root, 'bench/gpu', f)]);
    execFileSync('bash', ['-n', join(root, 'scripts/pack-device.sh')]);
  });

  it('mini-vitest reports a failing test and exits 1', () => {
    mkdirSync(outDir, { recursive: true });
    const out = join(outDir, 'fails.mjs');
    bundle([
      "import { describe, it, expect } from 'vitest';",
      "import { runAll } from './bench/gpu/mini-vitest.ts';",
      "describe('s', () => { it('passes', () => expect([1, 2]).toEqual([1, 2])); it('fails', () => expect(1).toBe(2)); it.skip('skipped', () => {}); });",
      "process.exitCode = (await runAll('t')) > 0 ? 1 : 0;",
    ].join('\n'), out);
    const r = spawnSync(process.execPath, [out], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const lines = results(r.stdout);
    expect(lines.find((l) => l.test === 's > fails')).toMatchObject({ status: 'failed' });
    expect(String(lines.find((l) => l.test === 's > fails')?.error)).toMatch(/expected 1 to be 2/);
    expect(lines.at(-1)).toMatchObject({ bench: 'cuda-tests', passed: 1, failed: 1, skipped: 1 });
  });

  it.skipIf(!existsSync(addonPath('emulation')))('the bundled CUDA kernel tests pass on the emulation flavour', () => {
    const files = readdirSync(join(root, 'tests/cuda')).filter((f) => f.endsWith('.test.ts') && !/^(addon|cli-cuda|emu)\./.test(f));
    expect(files.length).toBeGreaterThan(5);
    const out = join(outDir, 'cuda-tests.mjs');
    bundle([...files.map((f) => `import './tests/cuda/${f}';`), "import { runAll } from './bench/gpu/mini-vitest.ts';",
      "process.exitCode = (await runAll('cuda')) > 0 ? 1 : 0;"].join('\n'), out);
    const r = spawnSync(process.execPath, [out], { encoding: 'utf8', env: { ...process.env, KILN_CUDA_TEST_FLAVOURS: 'emulation' } });
    const lines = results(r.stdout);
    const failed = lines.filter((l) => l.status === 'failed');
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    expect(r.status).toBe(0);
    const summary = lines.at(-1) as { passed: number; failed: number };
    expect(summary.failed).toBe(0);
    expect(summary.passed).toBeGreaterThan(100);
  });
});
