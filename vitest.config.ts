import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    reporters: ['default', './tests/helpers/summary-reporter.ts'],
    // Builds the CUDA addon's emulation flavour (incrementally) for tests/cuda/.
    globalSetup: ['./tests/helpers/cuda-global-setup.ts'],
    // GPU tests share one Dawn instance per file and SwiftShader is CPU-bound: run files in
    // separate forks, two at a time (the CI machine has two cores).
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
