// WebGPU matmul speed: the tiled kernel against the naive one-output-per-invocation
// kernel on square M=N=K products.
//   npx tsx bench/matmul.ts [--sizes 1024,2048,4096] [--kernels tiled,naive] [--tile 32|64] [--seconds 1] [--rounds 3]
// Default sizes: 128,256,512 on a software adapter (SwiftShader), 1024,2048,4096 on a GPU.
// Prints one JSON line per kernel and size. A timing records `iters` dispatches (about
// --seconds worth) into one command buffer, submits it and awaits
// queue.onSubmittedWorkDone, after a warm-up submit that also compiles the pipeline;
// `rounds` timings alternate between the kernels. ms is the median wall time per
// dispatch (ms_min the fastest round), gflops = 2*M*N*K / ms.
import { requestGpu } from '../src/backends/webgpu/device.ts';
import { PipelineCache, recordPass, storageBuffer, type Dispatch } from '../src/backends/webgpu/kernel.ts';
import { shaderSources } from '../src/backends/webgpu/shader-source.ts';
import { matmul, matmulNaive, matmulTile } from '../src/backends/webgpu/ops/matmul.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function timeDispatches(device: GPUDevice, dispatches: Dispatch[], iters: number): Promise<number> {
  const enc = device.createCommandEncoder();
  for (let i = 0; i < iters; i++) recordPass(enc, dispatches, 'bench');
  const t0 = performance.now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / iters;
}

async function main(): Promise<void> {
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const gpu = await requestGpu();
  const { device } = gpu;
  const k = new PipelineCache(device, await shaderSources());
  const sizes = (flag('sizes') ?? (gpu.isSoftware ? '128,256,512' : '1024,2048,4096')).split(',').map(Number);
  const kernels = (flag('kernels') ?? 'tiled,naive').split(',');
  const seconds = Number(flag('seconds') ?? 1);
  const rounds = Number(flag('rounds') ?? 3);
  const tile = flag('tile') ? (Number(flag('tile')) as 32 | 64) : undefined;

  for (const n of sizes) {
    const [M, N, K] = [n, n, n];
    const fill = (len: number) => Float32Array.from({ length: len }, (_, i) => ((i * 7919) % 101) / 101 - 0.5);
    const a = storageBuffer(device, 'a', M * K * 4, fill(M * K));
    const b = storageBuffer(device, 'b', K * N * 4, fill(K * N));
    const out = storageBuffer(device, 'out', M * N * 4);
    const runs = kernels.map((kernel) => {
      const make = kernel === 'naive' ? matmulNaive : matmul;
      return { kernel, dispatches: make(k, out, a, b, null, { M, N, K, tile }), iters: 0, ms: [] as number[] };
    });
    for (const r of runs) {
      const once = await timeDispatches(device, r.dispatches, 1); // compiles and warms up
      r.iters = Math.max(2, Math.min(200, Math.round((seconds * 1000) / Math.max(once, 0.01))));
    }
    // Kernels alternate within each round, so a load change on a shared machine hits both.
    for (let round = 0; round < rounds; round++) {
      for (const r of runs) r.ms.push(await timeDispatches(device, r.dispatches, r.iters));
    }
    for (const r of runs) {
      const sorted = [...r.ms].sort((x, y) => x - y);
      const ms = sorted[Math.floor(sorted.length / 2)];
      const gflops = (2 * M * N * K) / (ms * 1e6);
      const line = {
        bench: 'matmul', kernel: r.kernel, M, N, K, tile: r.kernel === 'naive' ? undefined : (tile ?? matmulTile(M, N)),
        ms: +ms.toFixed(4), gflops: +gflops.toFixed(3), ms_min: +sorted[0].toFixed(4), iters: r.iters, rounds, device: gpu.adapterName,
      };
      process.stdout.write(JSON.stringify(line) + '\n');
    }
    a.destroy();
    b.destroy();
    out.destroy();
  }
  device.destroy();
}

await main();
