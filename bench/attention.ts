// WebGPU causal self-attention speed: the fused flash kernels against the multi-kernel
// path that materialises the (B,NH,T,T) matrix, forward and backward, on model shapes.
//   npx tsx bench/attention.ts [--shapes B,T,C,NH;...] [--impls flash,naive] [--seconds 1] [--rounds 3]
// Default shapes: char-shakespeare's and gpt2-124m's heads (64,256,384,6 and 8,1024,768,12)
// on a GPU; small ones on a software adapter (SwiftShader).
// One JSON line per shape, path and direction: ms (median wall time per pass, ms_min the
// fastest round) and gflops, counted as the model's flops, the same for both paths:
// forward 4 HS per causal (query, key) pair (q.k and p v), backward 8 HS (dout.v, ds k,
// ds q, p dout); the flash backward also recomputes q.k, so it does more than it is
// credited with. pct_peak: the share of the adapter's FP32 peak (src/backends/webgpu/peaks.ts).
// A path whose buffers or pipelines fail (e.g. the naive matrix past the binding limit)
// gets an `error` line and the others still run. Timing as bench/matmul.ts (gpu-timing.ts).
// The flash lines also carry `check`: flash against naive on the GPU (compare() below).
import { readBuffer, storageBuffer } from '../src/backends/webgpu/kernel.ts';
import { fp32Peak } from '../src/backends/webgpu/peaks.ts';
import { attentionBackward, attentionForward, attentionScratch, type AttentionImpl } from '../src/backends/webgpu/ops/attention.ts';
import { benchGpu, flag, itersFor, medianMin, scoped, timeDispatches } from './gpu-timing.ts';

function parseShapes(s: string): Array<[number, number, number, number]> {
  return s.split(';').map((one) => {
    const v = one.split(',').map(Number);
    if (v.length !== 4 || !v.every((x) => Number.isInteger(x) && x > 0) || v[2] % v[3] !== 0) {
      throw new Error(`bench/attention: shape "${one}": give B,T,C,NH (positive integers, C divisible by NH)`);
    }
    return v as [number, number, number, number];
  });
}

/**
 * The flash path's out and dqkv against the naive path's on the same inputs (both on the
 * GPU): `check` "ok" when the worst |difference| is within 1e-4 of the largest |value| of
 * each tensor, the tests' tolerance. Catches what SwiftShader cannot: a race between
 * workgroup-memory tiles that only a GPU's scheduling exposes.
 */
function compare(results: Map<AttentionImpl, [Float32Array, Float32Array]>): { check: string; max_rel_diff?: number } {
  const flash = results.get('flash');
  const naive = results.get('naive');
  if (!flash || !naive) return { check: 'no naive run to compare with' };
  let worst = 0;
  for (let t = 0; t < 2; t++) {
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < naive[t].length; i++) {
      const d = Math.abs(flash[t][i] - naive[t][i]);
      diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
      scale = Math.max(scale, Math.abs(naive[t][i]));
    }
    worst = Math.max(worst, diff / Math.max(scale, 1e-30));
  }
  return { check: worst <= 1e-4 ? 'ok' : 'FAIL', max_rel_diff: Number.isFinite(worst) ? +worst.toExponential(2) : -1 };
}

async function main(): Promise<void> {
  const { gpu, device, k, toggles } = await benchGpu();
  const shapes = parseShapes(flag('shapes') ?? (gpu.isSoftware ? '1,64,64,2;1,128,128,2' : '64,256,384,6;8,1024,768,12'));
  const impls = (flag('impls') ?? 'flash,naive').split(',') as AttentionImpl[];
  const seconds = Number(flag('seconds') ?? 1);
  const rounds = Number(flag('rounds') ?? 3);
  const peak = fp32Peak(gpu.adapterName);

  for (const [B, T, C, NH] of shapes) {
    const HS = C / NH;
    const pairs = (B * NH * T * (T + 1)) / 2;
    const fill = (len: number, seed: number) => Float32Array.from({ length: len }, (_, i) => (((i + seed) * 7919) % 101) / 101 - 0.5);
    const qkv = storageBuffer(device, 'qkv', B * T * 3 * C * 4, fill(B * T * 3 * C, 1));
    const dout = storageBuffer(device, 'dout', B * T * C * 4, fill(B * T * C, 2));
    const out = storageBuffer(device, 'out', B * T * C * 4);
    const dqkv = storageBuffer(device, 'dqkv', B * T * 3 * C * 4);
    interface Run { impl: AttentionImpl; pass: 'forward' | 'backward'; flops: number; time: () => Promise<number>; iters: number; ms: number[] }
    const runs: Run[] = [];
    const scratch: GPUBuffer[] = [];
    const results = new Map<AttentionImpl, [Float32Array, Float32Array]>();
    for (const impl of impls) {
      const r = await scoped(device, async () => {
        const sizes = attentionScratch(B, T, C, NH, impl);
        const saved = storageBuffer(device, 'saved', sizes.saved);
        const temp = storageBuffer(device, 'temp', sizes.temp);
        scratch.push(saved, temp);
        const fwd = attentionForward(k, out, qkv, saved, B, T, C, NH, impl);
        const bwd = attentionBackward(k, dqkv, dout, qkv, out, saved, temp, B, T, C, NH, impl);
        // One pass each with a fresh gradient, kept for the check; this also compiles the
        // pipelines. Then one timing each sizes the rounds.
        await timeDispatches(device, [...fwd, ...attentionBackward(k, dqkv, dout, qkv, out, saved, temp, B, T, C, NH, impl, { accumulate: false })], 1);
        results.set(impl, [new Float32Array(await readBuffer(device, out, B * T * C * 4)), new Float32Array(await readBuffer(device, dqkv, B * T * 3 * C * 4))]);
        return { fwd, bwd, fwdMs: await timeDispatches(device, fwd, 1), bwdMs: await timeDispatches(device, bwd, 1) };
      });
      if (r.error || !r.value) {
        process.stdout.write(JSON.stringify({ bench: 'attention', impl, B, T, C, NH, error: r.error, device: gpu.adapterName, ...toggles }) + '\n');
        continue;
      }
      const { fwd, bwd, fwdMs, bwdMs } = r.value;
      const fi = itersFor(seconds, fwdMs);
      const bi = itersFor(seconds, bwdMs);
      runs.push({ impl, pass: 'forward', flops: 4 * HS * pairs, time: () => timeDispatches(device, fwd, fi), iters: fi, ms: [] });
      runs.push({ impl, pass: 'backward', flops: 8 * HS * pairs, time: () => timeDispatches(device, bwd, bi), iters: bi, ms: [] });
    }
    for (let round = 0; round < rounds; round++) {
      for (const r of runs) r.ms.push(await r.time());
    }
    const check = compare(results);
    for (const r of runs) {
      const { ms, ms_min } = medianMin(r.ms);
      const gflops = r.flops / (ms * 1e6);
      process.stdout.write(JSON.stringify({
        bench: 'attention', impl: r.impl, pass: r.pass, B, T, C, NH, HS,
        ms: +ms.toFixed(4), gflops: +gflops.toFixed(3), ms_min: +ms_min.toFixed(4), iters: r.iters, rounds, ...(r.impl === 'flash' ? check : {}),
        pct_peak: peak ? +((100 * gflops * 1e9) / peak.flops).toFixed(2) : undefined, device: gpu.adapterName, ...toggles,
      }) + '\n');
    }
    for (const b of [qkv, dout, out, dqkv, ...scratch]) b.destroy();
  }
  device.destroy();
}

await main();
