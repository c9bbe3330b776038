// FP32 peaks of known GPUs, for MFU (BackendInfo.peakFlops): plain FP32 on the CUDA /
// shader cores, not tensor cores (a WGSL f32 kernel cannot reach those), dense, at the
// boost clock. A peak is given only when the adapter string names one configuration:
// "NVIDIA H100" alone may be the SXM or the PCIe card (67 vs 51 TFLOP/s), and an Apple
// chip comes with several GPU core counts, so those give no peak unless the string
// settles it. Better no MFU than a wrong one.
//
// Where the figures come from: NVIDIA's product datasheets (the FP32 row) and
// architecture whitepapers; each equals CUDA cores x 2 FLOP x boost clock, which is noted
// where the datasheet does not print FP32. Apple publishes teraflops for some M1 chips
// only; per-core figures below reproduce those.

export interface PeakMatch {
  /** The GPU the table matched, e.g. "NVIDIA H200 SXM". */
  name: string;
  /** FLOP/s. */
  flops: number;
}

interface Entry {
  name: string;
  /** TFLOP/s FP32. */
  tflops: number;
  match: RegExp;
  /** Strings that look like a match but are a different product. */
  not?: RegExp;
  source: string;
}

interface AppleEntry {
  name: string;
  /** TFLOP/s FP32 per GPU core. */
  perCore: number;
  /** The GPU core counts the chip ships with. */
  cores: number[];
  match: RegExp;
  source: string;
}

// Laptop parts share desktop names with lower clocks.
const MOBILE = /laptop|mobile|max-q/i;

const NVIDIA: Entry[] = [
  // NVIDIA H200 datasheet: FP32 67 TFLOPS (SXM), 60 TFLOPS (NVL). Vulkan names the SXM part "NVIDIA H200".
  { name: 'NVIDIA H200 SXM', tflops: 67, match: /\bH200\b/i, not: /\bNVL\b|PCIe/i, source: 'NVIDIA H200 datasheet' },
  { name: 'NVIDIA H200 NVL', tflops: 60, match: /\bH200 NVL\b/i, source: 'NVIDIA H200 datasheet' },
  // NVIDIA H100 datasheet: FP32 67 (SXM), 51 (PCIe), 60 (NVL) TFLOPS. The SXM5 part reports "H100 80GB HBM3" (or "H100 SXM5 ...").
  { name: 'NVIDIA H100 SXM', tflops: 67, match: /\bH100\b.*\b(SXM\d?|HBM3)\b/i, not: /PCIe|\bNVL\b/i, source: 'NVIDIA H100 datasheet' },
  { name: 'NVIDIA H100 PCIe', tflops: 51, match: /\bH100\b.*\bPCIe\b/i, source: 'NVIDIA H100 datasheet' },
  { name: 'NVIDIA H100 NVL', tflops: 60, match: /\bH100 NVL\b/i, source: 'NVIDIA H100 datasheet' },
  // NVIDIA GH200 Grace Hopper datasheet: FP32 67 TFLOPS (the GPU is the H100 SXM's).
  { name: 'NVIDIA GH200', tflops: 67, match: /\bGH200\b/i, source: 'NVIDIA GH200 datasheet' },
  // NVIDIA A100 datasheet: FP32 19.5 TFLOPS, SXM4 and PCIe alike (6912 cores x 2 x 1.41 GHz).
  { name: 'NVIDIA A100', tflops: 19.5, match: /\bA100\b/i, source: 'NVIDIA A100 datasheet' },
  // NVIDIA L40S datasheet: FP32 91.6 TFLOPS; L40 datasheet: 90.5; L4 datasheet: 30.3.
  { name: 'NVIDIA L40S', tflops: 91.6, match: /\bL40S\b/i, source: 'NVIDIA L40S datasheet' },
  { name: 'NVIDIA L40', tflops: 90.5, match: /\bL40\b/i, source: 'NVIDIA L40 datasheet' },
  { name: 'NVIDIA L4', tflops: 30.3, match: /\bL4\b/i, source: 'NVIDIA L4 datasheet' },
  // NVIDIA A10 datasheet: FP32 31.2 TFLOPS (not the A10G, whose clocks differ).
  { name: 'NVIDIA A10', tflops: 31.2, match: /\bA10\b/i, source: 'NVIDIA A10 datasheet' },
  // NVIDIA T4 datasheet: FP32 8.1 TFLOPS.
  { name: 'NVIDIA T4', tflops: 8.1, match: /\bT4\b/i, source: 'NVIDIA T4 datasheet' },
  // NVIDIA V100 datasheet: FP32 15.7 (SXM2), 14 (PCIe) TFLOPS.
  { name: 'NVIDIA V100 SXM2', tflops: 15.7, match: /\bV100\b.*\bSXM2\b/i, source: 'NVIDIA V100 datasheet' },
  { name: 'NVIDIA V100 PCIe', tflops: 14, match: /\bV100\b.*\bPCIe\b/i, source: 'NVIDIA V100 datasheet' },
  // NVIDIA Ada Lovelace architecture whitepaper (appendix tables): RTX 4090 82.6, RTX 4080 48.7,
  // RTX 6000 Ada 91.1 TFLOPS FP32 (the 4090 D and the SUPER/Ti variants are other products).
  { name: 'NVIDIA GeForce RTX 4090', tflops: 82.6, match: /\bRTX 4090\b/i, not: /\b4090 D\b|\b4090D\b/i, source: 'NVIDIA Ada Lovelace whitepaper' },
  { name: 'NVIDIA GeForce RTX 4080', tflops: 48.7, match: /\bRTX 4080\b/i, not: /\b4080 (SUPER|Ti)\b/i, source: 'NVIDIA Ada Lovelace whitepaper' },
  { name: 'NVIDIA RTX 6000 Ada', tflops: 91.1, match: /\bRTX 6000 Ada\b/i, source: 'NVIDIA Ada Lovelace whitepaper; RTX 6000 Ada datasheet' },
  // NVIDIA Ampere GA102 whitepaper: RTX 3090 35.6 TFLOPS (10496 cores x 2 x 1.695 GHz);
  // RTX 3090 Ti 40 (10752 x 2 x 1.86 GHz, NVIDIA spec page); RTX A6000 datasheet 38.7.
  { name: 'NVIDIA GeForce RTX 3090', tflops: 35.6, match: /\bRTX 3090\b/i, not: /\b3090 Ti\b/i, source: 'NVIDIA Ampere GA102 whitepaper' },
  { name: 'NVIDIA GeForce RTX 3090 Ti', tflops: 40, match: /\bRTX 3090 Ti\b/i, source: 'NVIDIA RTX 3090 Ti specifications (cores x 2 x boost clock)' },
  { name: 'NVIDIA RTX A6000', tflops: 38.7, match: /\bRTX A6000\b/i, source: 'NVIDIA RTX A6000 datasheet' },
];

// Apple GPU cores each have 128 FP32 ALUs. M1 family: Apple's figures (M1 8-core 2.6 TFLOPS,
// M1 Pro 16-core 5.2, M1 Max 32-core 10.4, M1 Ultra 64-core 21; Apple newsroom, Nov 2020 - Mar
// 2022) are 0.327 TFLOPS per core (128 x 2 x 1.278 GHz). M2 family: Apple quotes no teraflops;
// 0.358 per core is 128 x 2 x 1.398 GHz, the clock measured by reviewers, giving the 3.6
// TFLOPS commonly quoted for the 10-core M2. M3 and later: no published or well-measured
// clock, so no entry. Every chip ships with more than one core count, so a peak needs the
// count in the adapter string (e.g. "32-core"); WebGPU adapters do not usually say it.
const APPLE: AppleEntry[] = [
  { name: 'Apple M1', perCore: 2.6 / 8, cores: [7, 8], match: /\bM1\b(?! (Pro|Max|Ultra)\b)/i, source: 'Apple newsroom (M1, 2.6 TFLOPS at 8 cores)' },
  { name: 'Apple M1 Pro', perCore: 2.6 / 8, cores: [14, 16], match: /\bM1 Pro\b/i, source: 'Apple newsroom (M1 Pro, 5.2 TFLOPS at 16 cores)' },
  { name: 'Apple M1 Max', perCore: 2.6 / 8, cores: [24, 32], match: /\bM1 Max\b/i, source: 'Apple newsroom (M1 Max, 10.4 TFLOPS at 32 cores)' },
  { name: 'Apple M1 Ultra', perCore: 2.6 / 8, cores: [48, 64], match: /\bM1 Ultra\b/i, source: 'Apple newsroom (M1 Ultra, 21 TFLOPS at 64 cores)' },
  { name: 'Apple M2', perCore: 3.58 / 10, cores: [8, 10], match: /\bM2\b(?! (Pro|Max|Ultra)\b)/i, source: '128 ALUs x 2 x 1.398 GHz per core' },
  { name: 'Apple M2 Pro', perCore: 3.58 / 10, cores: [16, 19], match: /\bM2 Pro\b/i, source: '128 ALUs x 2 x 1.398 GHz per core' },
  { name: 'Apple M2 Max', perCore: 3.58 / 10, cores: [30, 38], match: /\bM2 Max\b/i, source: '128 ALUs x 2 x 1.398 GHz per core' },
  { name: 'Apple M2 Ultra', perCore: 3.58 / 10, cores: [60, 76], match: /\bM2 Ultra\b/i, source: '128 ALUs x 2 x 1.398 GHz per core' },
];

/**
 * The FP32 peak of the GPU an adapter string names (device.ts joins the adapter's vendor,
 * architecture, device and description), or null when the table has no entry for it or
 * the string fits more than one configuration.
 */
export function fp32Peak(adapter: string): PeakMatch | null {
  const s = adapter.replace(/\s+/g, ' ');
  if (/nvidia|tesla|geforce|quadro/i.test(s) && !MOBILE.test(s)) {
    const hits = NVIDIA.filter((e) => e.match.test(s) && !e.not?.test(s));
    return hits.length === 1 ? { name: hits[0].name, flops: hits[0].tflops * 1e12 } : null;
  }
  if (/apple/i.test(s)) {
    const hits = APPLE.filter((e) => e.match.test(s));
    if (hits.length !== 1) return null;
    const e = hits[0];
    const said = /\b(\d+)[- ]core\b/i.exec(s);
    const cores = said ? Number(said[1]) : e.cores.length === 1 ? e.cores[0] : NaN;
    if (!e.cores.includes(cores)) return null;
    return { name: `${e.name} (${cores}-core GPU)`, flops: +(e.perCore * cores).toFixed(3) * 1e12 };
  }
  return null;
}
