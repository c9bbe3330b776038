// How a config sits against a browser's GPU: its size, FLOPs, the memory the WebGPU
// buffer plan allocates (not the CPU reference's estimate), and each limit it breaks,
// said with the limit's name and by how much. No GPU is needed: the limits are data.
import { planSummary } from '../backends/webgpu/plan.ts';
import { validate, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { flopsPerToken, memoryEstimate, modelSpec, resolveModel } from '../core/model-spec.ts';
import type { ConfigFit, LabEnvironment, LimitProblem } from './api.ts';

/** Browsers rarely give one tab more GPU memory than this (WebGPU cannot say how much there is); a plan above it is flagged. */
export const BROWSER_MEMORY_BUDGET = 4 * 1024 ** 3;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

/** The fit on WebGPU with these adapter limits, or on the CPU reference (limits null). */
export function configFit(config: RunConfig, vocabSize: number, limits: LabEnvironment['limits'] | null): ConfigFit {
  const issues = validate(config);
  if (issues.length) throw new KilnError('config', issues.map((i) => i.message).join('; '), 'fix the fields marked in the form');
  const model = resolveModel(config, vocabSize);
  const base = { numParams: modelSpec(model).numParams, flopsPerToken: flopsPerToken(model) };
  if (!limits) {
    return { ...base, memoryBytes: memoryEstimate(model, config.batchSize).total, largestBinding: 0, largestName: '', fits: true, problems: [] };
  }
  const plan = planSummary(model, config.batchSize, limits);
  const problems: LimitProblem[] = [];
  if (plan.problem) problems.push({ limit: /maxBufferSize/.test(plan.problem) ? 'maxBufferSize' : 'maxStorageBufferBindingSize', message: plan.problem });
  if (plan.totalBytes > BROWSER_MEMORY_BUDGET) {
    problems.push({
      limit: 'memory',
      message: `training needs ${gib(plan.totalBytes)} of GPU memory, ${gib(plan.totalBytes - BROWSER_MEMORY_BUDGET)} more than the ${gib(BROWSER_MEMORY_BUDGET)} a browser tab can count on`,
    });
  }
  return { ...base, memoryBytes: plan.totalBytes, largestBinding: plan.largestBinding, largestName: plan.largestName, fits: problems.length === 0, problems };
}
