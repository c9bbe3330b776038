// Backend by name for the CLI. GPU backends load lazily so `--backend cpu` never
// touches Dawn or a native addon.
import type { Backend } from '../backends/backend.ts';
import { CpuBackend } from '../backends/cpu.ts';
import { KilnError } from '../core/errors.ts';

export const BACKEND_NAMES = ['auto', 'cpu', 'webgpu', 'cuda'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export function parseBackendName(s: string | undefined): BackendName {
  const name = s ?? 'auto';
  if (!(BACKEND_NAMES as readonly string[]).includes(name))
    throw new KilnError('usage', `unknown backend "${name}"`, `use one of: ${BACKEND_NAMES.join(', ')}`);
  return name as BackendName;
}

export async function createBackend(name: BackendName): Promise<Backend> {
  switch (name) {
    case 'auto':
      return autoBackend();
    case 'cpu':
      return new CpuBackend();
    case 'webgpu': {
      const mod = await import('../backends/webgpu/backend.ts');
      return mod.WebGpuBackend.create();
    }
    case 'cuda':
      throw new KilnError(
        'device',
        'the CUDA backend is not available in this build of Kiln yet',
        'use --backend webgpu (your GPU through Dawn/Vulkan) or --backend cpu',
      );
  }
}

/**
 * A hardware GPU through WebGPU where there is one, else the CPU reference. (CUDA joins
 * the front of this list when its addon exists.) A software adapter such as SwiftShader
 * is passed over: it is slower than the CPU reference.
 */
async function autoBackend(): Promise<Backend> {
  try {
    const { WebGpuBackend } = await import('../backends/webgpu/backend.ts');
    const gpu = await WebGpuBackend.create();
    if (!gpu.gpu.isSoftware) return gpu;
    gpu.dispose();
  } catch {
    // No adapter or no Dawn: the CPU always works.
  }
  return new CpuBackend();
}
