// Kernels as small descriptors (as TF.js's WebGPU programs): which WGSL file and
// entry point, which override constants (tile and workgroup sizes, shapes baked in),
// and how many workgroups to dispatch. Pipelines are compiled once per key and
// reused every step; a dispatch is a pipeline, a bind group and a grid.
//
// Optional features (shader-variants.ts): a cache compiles every shader for one fixed
// set of features (e.g. {subgroups}, or none: the fallback), running `// #if` blocks
// through preprocess() before createShaderModule; module and pipeline keys carry the
// variant. Made without features it compiles the fallback of every shader. A kernel's
// own switches (KernelDesc.switches, `// #switch` in its shader) pick among further
// variants of one entry point; each combination is a module of its own.
import { expandIncludes, isShaderFeature, preprocess, SHADER_FEATURES, variantKey } from './shader-variants.ts';

export type Constants = Record<string, number>;

/** A tensor as a kernel binds it: a whole buffer, or a range (256-byte-aligned offset) of one. */
export type Bind = GPUBuffer | GPUBufferBinding;

export interface KernelDesc {
  /** File in shaders/ without .wgsl. */
  shader: string;
  entry: string;
  constants?: Constants;
  /** Switches of the shader (its `// #switch` line) to turn on; the others are off. */
  switches?: readonly string[];
}

export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
  /** Floating-point operations it performs (a multiply-add is 2), where its op counts them: the profile's GFLOP/s. */
  flops?: number;
}

export class PipelineCache {
  private readonly modules = new Map<string, GPUShaderModule>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** The shader features this cache compiles with (shaderFeatures() picks them for a device). */
  readonly features: ReadonlySet<string>;
  /** '' (the fallback) or the features joined by '+': part of every module and pipeline key. */
  readonly variant: string;

  constructor(
    readonly device: GPUDevice,
    private readonly sources: Record<string, string>,
    features: Iterable<string> = [],
  ) {
    this.features = new Set(features);
    for (const f of this.features) {
      if (!isShaderFeature(f)) throw new Error(`PipelineCache: no shader feature ${f} (known: ${Object.keys(SHADER_FEATURES).join(', ')})`);
      if (!device.features.has(f)) throw new Error(`PipelineCache: the device was not created with the ${f} feature`);
    }
    this.variant = variantKey(this.features);
  }

  /** Module key: the shader, the cache's feature variant in [], the kernel's switches in (). */
  private moduleKey(shader: string, on: readonly string[]): string {
    return `${shader}[${this.variant}]${on.length ? `(${on.join(',')})` : ''}`;
  }

  module(shader: string, switches: readonly string[] = []): GPUShaderModule {
    const on = [...new Set(switches)].sort();
    const key = this.moduleKey(shader, on);
    let m = this.modules.get(key);
    if (!m) {
      const src = this.sources[shader];
      if (src === undefined) throw new Error(`no shader named ${shader}.wgsl in shaders/`);
      const code = preprocess(expandIncludes(src, this.sources, shader), this.features, shader, new Set(on));
      m = this.device.createShaderModule({ label: key, code });
      this.modules.set(key, m);
    }
    return m;
  }

  pipeline(desc: KernelDesc): GPUComputePipeline {
    const constants = desc.constants ?? {};
    const on = [...new Set(desc.switches ?? [])].sort();
    const key = `${this.moduleKey(desc.shader, on)}:${desc.entry}:${Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(',')}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.device.createComputePipeline({
        label: key,
        layout: 'auto',
        compute: { module: this.module(desc.shader, on), entryPoint: desc.entry, constants },
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** A dispatch whose bindings are whole buffers (or buffer ranges) in binding order 0..n-1 of group 0. */
  dispatch(label: string, desc: KernelDesc, buffers: Array<GPUBuffer | GPUBufferBinding>, workgroups: [number, number?, number?]): Dispatch {
    const pipeline = this.pipeline(desc);
    const bindGroup = this.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: buffers.map((b, i) => ({ binding: i, resource: 'buffer' in b ? b : { buffer: b } })),
    });
    return { label, pipeline, bindGroup, workgroups: [workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1] };
  }
}

/** Records dispatches into one compute pass: WebGPU orders storage hazards between them. */
export function recordPass(encoder: GPUCommandEncoder, dispatches: readonly Dispatch[], label = 'step'): void {
  const pass = encoder.beginComputePass({ label });
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
  }
  pass.end();
}

export function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

const STORAGE = 0x80; // GPUBufferUsage.STORAGE, spelled out so this module loads before Dawn's globals exist
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;

/** A storage buffer of `bytes` (rounded up to 4), optionally filled. */
export function storageBuffer(device: GPUDevice, label: string, bytes: number, data?: ArrayBufferView): GPUBuffer {
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const buf = device.createBuffer({ label, size, usage: STORAGE | COPY_SRC | COPY_DST });
  if (data) device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
  return buf;
}

/** Copies a buffer's first `bytes` back to the CPU (one submit and one map; for tests, evals and readbacks, not per kernel). */
export async function readBuffer(device: GPUDevice, src: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = device.createBuffer({ label: 'readback', size, usage: MAP_READ | COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, offset, staging, 0, size);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(MAP_READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}
