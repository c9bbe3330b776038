// Per-dispatch GPU timing of a step graph with timestamp queries (WebGpuBackend.profileStep).
//
// Each dispatch is recorded in its own compute pass whose timestampWrites mark the
// pass's beginning and end; all query sets are resolved into one buffer at the end of
// the command buffer and read back with one mapAsync. A normal step records every
// dispatch in one pass, so the GPU may overlap neighbours and skips the per-pass
// start/end work: the per-dispatch times here include that overhead (a pass boundary
// is a full barrier, and some drivers flush caches there), so each family's total is an
// upper bound on what it costs inside a normal step, and the sum of all of them can
// exceed a normal step's GPU time. What it tells reliably is where the time goes
// (matmuls vs. the many small kernels) and how much a dispatch costs at the least.
import type { Dispatch } from './kernel.ts';

const QUERY_RESOLVE = 0x0200; // GPUBufferUsage.QUERY_RESOLVE, spelled out (see kernel.ts)
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
/** WebGPU caps a query set at 4096 queries: 2048 dispatches, two timestamps each. */
const QUERIES_PER_SET = 4096;
/** resolveQuerySet's destination offset must be a multiple of 256 bytes; 4096 * 8 is. */
const SET_BYTES = QUERIES_PER_SET * 8;

/** Labels whose family is their first two words (the rest take their first word). */
const TWO_WORD_FAMILIES = ['grad_norm', 'mean_loss'];

/**
 * A dispatch's kernel family: the op name its label starts with (labels are the WGSL
 * entry points, e.g. `matmul_a4_b4 split-K` -> matmul, `attention_flash_backward_dq`
 * -> attention, `grad_norm_partial` -> grad_norm). The classifier's logits products
 * are `matmul` dispatches, so they count as matmul; `classifier` is its softmax.
 */
export function kernelFamily(label: string): string {
  const two = TWO_WORD_FAMILIES.find((f) => label === f || label.startsWith(`${f}_`) || label.startsWith(`${f} `));
  if (two) return two;
  return label.split(/[_ ]/)[0] || label;
}

export interface DispatchTime {
  label: string;
  family: string;
  /** GPU time between its pass's beginning and end timestamps. */
  ms: number;
  /** Its floating-point operations, where its op counts them (Dispatch.flops). */
  flops?: number;
}

export interface FamilyTime {
  family: string;
  ms: number;
  dispatches: number;
  /** ms / the sum over all families. */
  share: number;
  /** Floating-point operations of the family's counted dispatches (0 if none counts them). */
  flops: number;
  /** Of those counted dispatches: their ms, for a GFLOP/s (a lower bound, as the times are upper bounds). */
  countedMs: number;
}

/** Totals per family, largest first (ties by name, so the order is stable). */
export function familyTotals(times: readonly DispatchTime[]): FamilyTime[] {
  const by = new Map<string, { ms: number; dispatches: number; flops: number; countedMs: number }>();
  for (const t of times) {
    const f = by.get(t.family) ?? { ms: 0, dispatches: 0, flops: 0, countedMs: 0 };
    f.ms += t.ms;
    f.dispatches++;
    if (t.flops !== undefined) {
      f.flops += t.flops;
      f.countedMs += t.ms;
    }
    by.set(t.family, f);
  }
  const total = times.reduce((s, t) => s + t.ms, 0);
  return [...by.entries()]
    .map(([family, f]) => ({ family, ms: f.ms, dispatches: f.dispatches, share: total > 0 ? f.ms / total : 0, flops: f.flops, countedMs: f.countedMs }))
    .sort((a, b) => b.ms - a.ms || a.family.localeCompare(b.family));
}

/** Query sets, the resolve buffer and the readback for timing `n` dispatches, one pass each. */
export class PassTimer {
  private readonly sets: GPUQuerySet[] = [];
  private readonly resolve: GPUBuffer;
  private readonly readback: GPUBuffer;

  constructor(device: GPUDevice, private readonly n: number) {
    const queries = 2 * n;
    for (let q = 0; q < queries; q += QUERIES_PER_SET) {
      this.sets.push(device.createQuerySet({ label: `profile ${this.sets.length}`, type: 'timestamp', count: Math.min(QUERIES_PER_SET, queries - q) }));
    }
    const bytes = Math.max(8, (this.sets.length - 1) * SET_BYTES + this.sets[this.sets.length - 1].count * 8);
    this.resolve = device.createBuffer({ label: 'profile resolve', size: bytes, usage: QUERY_RESOLVE | COPY_SRC });
    this.readback = device.createBuffer({ label: 'profile readback', size: bytes, usage: MAP_READ | COPY_DST });
  }

  /** Records each dispatch in its own timed compute pass, then the resolve and the copy to the readback. */
  record(encoder: GPUCommandEncoder, dispatches: readonly Dispatch[], label: string): void {
    if (dispatches.length !== this.n) throw new Error(`PassTimer: sized for ${this.n} dispatches, given ${dispatches.length}`);
    dispatches.forEach((d, i) => {
      const q = (2 * i) % QUERIES_PER_SET;
      const pass = encoder.beginComputePass({
        label: `${label} #${i} ${d.label}`,
        timestampWrites: { querySet: this.sets[Math.floor((2 * i) / QUERIES_PER_SET)], beginningOfPassWriteIndex: q, endOfPassWriteIndex: q + 1 },
      });
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
      pass.end();
    });
    this.sets.forEach((s, k) => encoder.resolveQuerySet(s, 0, s.count, this.resolve, k * SET_BYTES));
    encoder.copyBufferToBuffer(this.resolve, 0, this.readback, 0, this.resolve.size);
  }

  /**
   * Milliseconds per dispatch, after the submit that record() went into, and the
   * timer's apparent resolution: the largest power of two (up to 2^20 ns) dividing
   * every timestamp, 1-2 ns for an exact GPU clock, 65536 where Dawn quantizes
   * (its default, turned off in Node by device.ts; Chrome quantizes to 100 us unless
   * its WebGPU developer features are on). An end before its beginning (timestamps
   * are not promised monotonic across passes everywhere) counts as 0.
   */
  async read(): Promise<{ ms: Float64Array; resolutionNs: number }> {
    await this.readback.mapAsync(MAP_READ);
    const ts = new BigUint64Array(this.readback.getMappedRange().slice(0));
    this.readback.unmap();
    const ms = new Float64Array(this.n);
    let res = 1n << 20n;
    // Set k resolves at k * SET_BYTES, so dispatch i's timestamps are entries 2i and 2i+1.
    for (let i = 0; i < this.n; i++) {
      const [a, b] = [ts[2 * i], ts[2 * i + 1]];
      for (const x of [a, b]) while (res > 1n && x % res !== 0n) res >>= 1n;
      ms[i] = b > a ? Number(b - a) / 1e6 : 0;
    }
    return { ms, resolutionNs: Number(res) };
  }

  destroy(): void {
    for (const s of this.sets) s.destroy();
    this.resolve.destroy();
    this.readback.destroy();
  }
}
