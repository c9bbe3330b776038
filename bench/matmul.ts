// WebGPU matmul speed: the tiled kernel (one or several tile candidates) against the
// naive one-output-per-invocation kernel on square M=N=K products.
//   npx tsx bench/matmul.ts [--sizes 1024,2048,4096] [--kernels tiled,naive]
//     [--tile 32|64|128 | --tiles 32,64,128,128k8] [--layout nn|nt|tn] [--seconds 1] [--rounds 3]
// --layout: nn (default) A (M,K) @ B (K,N), as the forward linear layers; nt B stored
// (N,K), as dinp = dout @ W^T and the logits; tn A stored (K,M), as dW = inp^T @ dout.
// The loaders differ by layout (matmul_tiles.wgsl transposes A in nn and nt, B in nt).
// Default sizes: 128,256,512 on a software adapter (SwiftShader), 1024,2048,4096 on a GPU.
// Tile candidates: 32, 64 (4x4 outputs per invocation), 128 (8x8, its K step by
// matmulTileK: 16 where the device has 32 KiB of workgroup memory), 128k8 / 128k16 (the
// 128 tile with that K step). Without --tile/--tiles the tiled kernel runs matmulTile's
// choice (or KILN_MATMUL_TILE's).
// Prints one JSON line per kernel, candidate and size (`tile` is the candidate: a number,
// or a string such as "128k8"; `tile_k` the K step it ran; `pct_peak` the share of the
// adapter's FP32 peak when src/backends/webgpu/peaks.ts knows it), then one
// `matmul_best` line per size naming the fastest candidate that passed its check and
// matmulTile's default. Every kernel's first dispatch (the warm-up) is checked: out is
// filled with NaN before it, read back after it, and 256 entries (the four corners and
// seeded random ones) are compared with an f64 dot product on the CPU (`check`: "ok",
// or how many were off; `max_err` the worst |diff| / (1e-4 |ref| + 2e-5 sqrt(K)), so
// <= 1 passes, the tests' tolerance). A candidate whose pipeline fails (a WebGPU
// validation or out-of-memory error) gets an `error` line and the others still run. A timing records `iters` dispatches (about
// --seconds worth) into one command buffer, submits it and awaits
// queue.onSubmittedWorkDone, after a warm-up submit that also compiles the pipeline;
// `rounds` timings alternate between all runs of a size. ms is the median wall time per
// dispatch (ms_min the fastest round), gflops = 2*M*N*K / ms.
import { readBuffer, storageBuffer, type Dispatch } from '../src/backends/webgpu/kernel.ts';
import { benchGpu, flag, itersFor, medianMin, scoped, timeDispatches } from './gpu-timing.ts';
import { fp32Peak } from '../src/backends/webgpu/peaks.ts';
import { matmul, matmulNaive, matmulTile, matmulTileK, type MatmulTile } from '../src/backends/webgpu/ops/matmul.ts';

interface Candidate {
  /** As given: "64", "128k8". */
  name: string;
  tile: MatmulTile;
  tileK?: 8 | 16;
}

function parseCandidate(s: string): Candidate {
  const m = /^(32|64|128)(?:k(8|16))?$/.exec(s.trim());
  if (!m || (m[2] && m[1] !== '128')) throw new Error(`bench/matmul: tile candidate "${s}": use 32, 64, 128, 128k8 or 128k16`);
  return { name: s.trim(), tile: Number(m[1]) as MatmulTile, tileK: m[2] ? (Number(m[2]) as 8 | 16) : undefined };
}

/** Entries of out (M,N) to check: the four corners and seeded random ones. */
function samples(M: number, N: number, count: number): Array<[number, number]> {
  const at: Array<[number, number]> = [[0, 0], [0, N - 1], [M - 1, 0], [M - 1, N - 1]];
  let x = 12345;
  while (at.length < count) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const m = x % M;
    x = (x * 1103515245 + 12345) % 2147483648;
    at.push([m, x % N]);
  }
  return at;
}

type Layout = 'nn' | 'nt' | 'tn';

/** Compares sampled entries of out (M,N) = op(a) @ op(b) with f64 dot products. */
function check(out: Float32Array, a: Float32Array, b: Float32Array, M: number, N: number, K: number, layout: Layout): { check: string; max_err: number } {
  const at_a = (m: number, k: number) => (layout === 'tn' ? a[k * M + m] : a[m * K + k]);
  const at_b = (k: number, n: number) => (layout === 'nt' ? b[n * K + k] : b[k * N + n]);
  let bad = 0;
  let worst = 0;
  const at = samples(M, N, 256);
  for (const [m, n] of at) {
    let ref = 0;
    for (let k = 0; k < K; k++) ref += at_a(m, k) * at_b(k, n);
    const got = out[m * N + n];
    const err = Number.isFinite(got) ? Math.abs(got - ref) / (1e-4 * Math.abs(ref) + 2e-5 * Math.sqrt(K)) : Infinity;
    worst = Math.max(worst, err);
    if (!(err <= 1)) bad++;
  }
  return { check: bad ? `FAIL ${bad}/${at.length}` : 'ok', max_err: Number.isFinite(worst) ? +worst.toFixed(3) : -1 };
}

async function main(): Promise<void> {
  const { gpu, device, k, toggles } = await benchGpu();
  const sizes = (flag('sizes') ?? (gpu.isSoftware ? '128,256,512' : '1024,2048,4096')).split(',').map(Number);
  const kernels = (flag('kernels') ?? 'tiled,naive').split(',');
  const seconds = Number(flag('seconds') ?? 1);
  const rounds = Number(flag('rounds') ?? 3);
  const layout = (flag('layout') ?? 'nn') as Layout;
  if (!['nn', 'nt', 'tn'].includes(layout)) throw new Error(`bench/matmul: --layout ${layout}: use nn, nt or tn`);
  const trans = { transA: layout === 'tn', transB: layout === 'nt' };
  const list = flag('tiles') ?? flag('tile');
  const candidates: Array<Candidate | null> = list ? list.split(',').map(parseCandidate) : [null]; // null: matmulTile's choice
  const wgMem = gpu.limits.maxComputeWorkgroupStorageSize;
  const peak = fp32Peak(gpu.adapterName);

  for (const n of sizes) {
    const [M, N, K] = [n, n, n];
    const fill = (len: number) => Float32Array.from({ length: len }, (_, i) => ((i * 7919) % 101) / 101 - 0.5);
    const [ca, cb] = [fill(M * K), fill(K * N)];
    const a = storageBuffer(device, 'a', M * K * 4, ca);
    const b = storageBuffer(device, 'b', K * N * 4, cb);
    const out = storageBuffer(device, 'out', M * N * 4);
    const nan = new Float32Array(M * N).fill(NaN);
    interface Run { kernel: string; tile?: number | string; tile_k?: number; dispatches: Dispatch[]; iters: number; ms: number[]; check: string; max_err: number }
    const runs: Run[] = [];
    for (const kernel of kernels) {
      for (const c of kernel === 'naive' ? [null] : candidates) {
        const tile = c?.tile ?? matmulTile(M, N);
        const label = {
          kernel,
          tile: kernel === 'naive' ? undefined : c?.tileK ? c.name : tile,
          tile_k: kernel === 'naive' ? undefined : tile === 128 ? matmulTileK(wgMem, c?.tileK) : 16,
        };
        const make = kernel === 'naive' ? matmulNaive : matmul;
        // Build and warm up (compiles the pipeline; out starts as NaN and the result is
        // checked); time one dispatch to size the rounds.
        const r = await scoped(device, async () => {
          const dispatches = make(k, out, a, b, null, { M, N, K, ...trans, tile: c?.tile, tileK: c?.tileK });
          device.queue.writeBuffer(out, 0, nan);
          await device.queue.onSubmittedWorkDone();
          const once = await timeDispatches(device, dispatches, 1);
          const got = new Float32Array(await readBuffer(device, out, M * N * 4));
          return { dispatches, once, ...check(got, ca, cb, M, N, K, layout) };
        });
        if (r.error || !r.value) {
          process.stdout.write(JSON.stringify({ bench: 'matmul', ...label, layout, M, N, K, error: r.error, device: gpu.adapterName, ...toggles }) + '\n');
          continue;
        }
        const iters = itersFor(seconds, r.value.once);
        runs.push({ ...label, dispatches: r.value.dispatches, iters, ms: [], check: r.value.check, max_err: r.value.max_err });
      }
    }
    // All runs of a size alternate within each round, so a load change on a shared machine hits each.
    for (let round = 0; round < rounds; round++) {
      for (const r of runs) r.ms.push(await timeDispatches(device, r.dispatches, r.iters));
    }
    let best: { tile?: number | string; gflops: number } | null = null;
    for (const r of runs) {
      const { ms, ms_min } = medianMin(r.ms);
      const gflops = (2 * M * N * K) / (ms * 1e6);
      if (r.kernel !== 'naive' && r.check === 'ok' && (!best || gflops > best.gflops)) best = { tile: r.tile, gflops };
      const line = {
        bench: 'matmul', kernel: r.kernel, layout, M, N, K, tile: r.tile, tile_k: r.tile_k,
        ms: +ms.toFixed(4), gflops: +gflops.toFixed(3), ms_min: +ms_min.toFixed(4), iters: r.iters, rounds, check: r.check, max_err: r.max_err,
        pct_peak: peak ? +((100 * gflops * 1e9) / peak.flops).toFixed(2) : undefined, device: gpu.adapterName, ...toggles,
      };
      process.stdout.write(JSON.stringify(line) + '\n');
    }
    if (best) {
      const pct = peak ? +((100 * best.gflops * 1e9) / peak.flops).toFixed(2) : undefined;
      process.stdout.write(JSON.stringify({ bench: 'matmul_best', layout, M, N, K, tile: best.tile, gflops: +best.gflops.toFixed(3), pct_peak: pct, default_tile: matmulTile(M, N), peak: peak?.name, ...toggles }) + '\n');
    }
    a.destroy();
    b.destroy();
    out.destroy();
  }
  device.destroy();
}

await main();
