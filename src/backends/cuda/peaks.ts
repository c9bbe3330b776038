// Dense bf16 tensor-core peaks (FP32 accumulation, no sparsity), for the MFU of a bf16
// CUDA run: its matrix products run on the tensor cores, so the FP32 table of
// src/backends/webgpu/peaks.ts would overstate MFU several times over. Keyed by the
// names that table's matcher gives, so a GPU is recognised the same way for both.
// Figures: each product's datasheet, whose tensor rows print "with sparsity": the dense
// rate is half of that. GeForce cards are left out: their FP32-accumulate rate is a
// fraction of the printed one, and no MFU is better than a wrong one.
import { fp32Peak, type PeakMatch } from '../webgpu/peaks.ts';

const BF16_TFLOPS: Record<string, number> = {
  'NVIDIA H200 SXM': 989.5, // H200 datasheet: BF16 Tensor Core 1,979 TFLOPS (sparse)
  'NVIDIA H200 NVL': 835.5, // 1,671 (sparse)
  'NVIDIA H100 SXM': 989.5, // H100 datasheet: 1,979 (sparse)
  'NVIDIA H100 PCIe': 756.5, // 1,513 (sparse)
  'NVIDIA H100 NVL': 835.5, // 1,671 (sparse)
  'NVIDIA GH200': 989.5, // GH200 datasheet: the H100 SXM's GPU
  'NVIDIA A100': 312, // A100 datasheet: 312 dense, 624 sparse
  'NVIDIA L40S': 362.05, // L40S datasheet: 362.05 | 733 sparse
  'NVIDIA L40': 181.05, // L40 datasheet: 181.05 | 362.1 sparse
  'NVIDIA L4': 121, // L4 datasheet: 242 (sparse)
  'NVIDIA A10': 125, // A10 datasheet: 125 | 250 sparse
  'NVIDIA RTX 6000 Ada': 364.2, // RTX 6000 Ada datasheet: 728.5 (sparse)
  'NVIDIA RTX A6000': 154.8, // RTX A6000 datasheet: 309.7 (sparse)
};

/**
 * The peak a CUDA run's MFU is measured against: the dense bf16 tensor peak in bf16 mode,
 * the FP32 peak in f32 mode (our f32 GEMM runs on the CUDA cores). Null where unknown.
 */
export function cudaPeak(deviceName: string, dtype: 'f32' | 'bf16'): PeakMatch | null {
  const fp32 = fp32Peak(deviceName);
  if (!fp32 || dtype === 'f32') return fp32;
  const tflops = BF16_TFLOPS[fp32.name];
  return tflops ? { name: fp32.name, flops: tflops * 1e12 } : null;
}
