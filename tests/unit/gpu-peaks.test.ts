// fp32Peak: adapter strings as device.ts builds them (vendor, architecture, device,
// description) map to one GPU's FP32 peak, or to none when the string is ambiguous.
import { describe, expect, it } from 'vitest';
import { fp32Peak } from '../../src/backends/webgpu/peaks.ts';

describe('fp32Peak', () => {
  const known: Array<[string, string, number]> = [
    ['nvidia hopper NVIDIA H200', 'NVIDIA H200 SXM', 67],
    ['nvidia hopper 0x2335 NVIDIA H200', 'NVIDIA H200 SXM', 67],
    ['nvidia hopper NVIDIA H200 NVL', 'NVIDIA H200 NVL', 60],
    ['nvidia hopper NVIDIA H100 80GB HBM3', 'NVIDIA H100 SXM', 67],
    ['nvidia hopper NVIDIA H100 SXM5 80GB', 'NVIDIA H100 SXM', 67],
    ['nvidia hopper NVIDIA H100 PCIe', 'NVIDIA H100 PCIe', 51],
    ['nvidia hopper NVIDIA H100 NVL', 'NVIDIA H100 NVL', 60],
    ['nvidia hopper NVIDIA GH200 480GB', 'NVIDIA GH200', 67],
    ['nvidia ampere NVIDIA A100-SXM4-80GB', 'NVIDIA A100', 19.5],
    ['nvidia ampere NVIDIA A100 80GB PCIe', 'NVIDIA A100', 19.5],
    ['nvidia ampere NVIDIA A10', 'NVIDIA A10', 31.2],
    ['nvidia lovelace NVIDIA L40S', 'NVIDIA L40S', 91.6],
    ['nvidia lovelace NVIDIA L40', 'NVIDIA L40', 90.5],
    ['nvidia lovelace NVIDIA L4', 'NVIDIA L4', 30.3],
    ['nvidia turing Tesla T4', 'NVIDIA T4', 8.1],
    ['nvidia volta Tesla V100-SXM2-16GB', 'NVIDIA V100 SXM2', 15.7],
    ['nvidia lovelace NVIDIA GeForce RTX 4090', 'NVIDIA GeForce RTX 4090', 82.6],
    ['nvidia lovelace NVIDIA GeForce RTX 4080', 'NVIDIA GeForce RTX 4080', 48.7],
    ['nvidia lovelace NVIDIA RTX 6000 Ada Generation', 'NVIDIA RTX 6000 Ada', 91.1],
    ['nvidia ampere NVIDIA GeForce RTX 3090', 'NVIDIA GeForce RTX 3090', 35.6],
    ['nvidia ampere NVIDIA GeForce RTX 3090 Ti', 'NVIDIA GeForce RTX 3090 Ti', 40],
    ['nvidia ampere NVIDIA RTX A6000', 'NVIDIA RTX A6000', 38.7],
    ['apple metal-3 Apple M1 (8-core GPU)', 'Apple M1 (8-core GPU)', 2.6],
    ['apple metal-3 Apple M1 Max 32-core', 'Apple M1 Max (32-core GPU)', 10.4],
    ['apple metal-3 Apple M1 Ultra 64-core', 'Apple M1 Ultra (64-core GPU)', 20.8],
    ['apple metal-3 Apple M2 10-core', 'Apple M2 (10-core GPU)', 3.58],
    ['apple metal-3 Apple M2 Max 38-core', 'Apple M2 Max (38-core GPU)', 13.604],
  ];
  for (const [adapter, name, tflops] of known) {
    it(`"${adapter}" -> ${name}, ${tflops} TFLOP/s`, () => {
      const p = fp32Peak(adapter);
      expect(p?.name).toBe(name);
      expect(p!.flops / 1e12).toBeCloseTo(tflops, 6);
    });
  }

  const unknown: Array<[string, string]> = [
    ['nvidia hopper NVIDIA H100', 'H100 without SXM/PCIe/NVL: 67 or 51 or 60'],
    ['nvidia hopper', 'only an architecture'],
    ['nvidia lovelace NVIDIA GeForce RTX 4090 Laptop GPU', 'a laptop part'],
    ['nvidia lovelace NVIDIA GeForce RTX 4090 D', 'the 4090 D'],
    ['nvidia lovelace NVIDIA GeForce RTX 4080 SUPER', 'not in the table'],
    ['nvidia ampere NVIDIA A10G', 'not in the table'],
    ['nvidia ampere NVIDIA GeForce RTX 3080', 'not in the table'],
    ['apple metal-3 Apple M1 Max', 'M1 Max has 24 or 32 GPU cores'],
    ['apple metal-3 Apple M2 Pro', 'M2 Pro has 16 or 19 GPU cores'],
    ['apple metal-3 Apple M1 Pro 12-core', 'no M1 Pro with 12 GPU cores'],
    ['apple metal-3 Apple M3 Max 40-core', 'no M3 entry'],
    ['apple common-3', 'a browser hiding the chip'],
    ['google swiftshader swiftshader-device-subzero- SwiftShader driver 5.0.0', 'software'],
    ['amd rdna-3 AMD Radeon RX 7900 XTX', 'not in the table'],
    ['WebGPU adapter', 'nothing known'],
    ['', 'empty'],
  ];
  for (const [adapter, why] of unknown) {
    it(`"${adapter}" -> none (${why})`, () => {
      expect(fp32Peak(adapter)).toBeNull();
    });
  }
});
