// How a config sits against a browser: its size, FLOPs, the memory the backend allocates
// (the WebGPU buffer plan, not the CPU reference's estimate, on WebGPU), and each limit
// it breaks, said with the limit's name and by how much. The decision and its words are
// src/core/budget.ts's, the same the CLI gives; no GPU is needed: the limits are data.
import { planSummary } from '../backends/webgpu/plan.ts';
import { adapterBudget, checkModelCost, type AdapterLimits, type Budget, type Planner } from '../core/budget.ts';
import { validate, type RunConfig } from '../core/config.ts';
import { KilnError } from '../core/errors.ts';
import { flopsPerToken, resolveModel } from '../core/model-spec.ts';
import type { ConfigFit, LabEnvironment } from './api.ts';

export { BROWSER_MEMORY_BUDGET } from '../core/budget.ts';

/** The WebGPU buffer plan at any shape, as the budget reads it (its per-tensor and head-size verdicts included). */
export function webgpuPlanner(limits: AdapterLimits): Planner {
  return (model, batchSize) => {
    const s = planSummary(model, batchSize, limits);
    const limit = !s.problem ? '' : /maxBufferSize/.test(s.problem) ? 'maxBufferSize' : /maxStorageBufferBindingSize/.test(s.problem) ? 'maxStorageBufferBindingSize' : 'head size';
    return { total: s.totalBytes, largest: s.largestBinding, largestName: s.largestName, problems: s.problem ? [{ limit, message: s.problem }] : [] };
  };
}

/**
 * The fit on WebGPU with these adapter limits, or on the CPU reference (limits null) within a
 * tab's memory; `planner`, where the backend plans its own memory (CUDA), replaces both plans.
 */
export function configFit(config: RunConfig, vocabSize: number, limits: LabEnvironment['limits'] | null, budget: Budget = adapterBudget(limits),
  planner: Planner | undefined = limits ? webgpuPlanner(limits) : undefined): ConfigFit {
  const issues = validate(config);
  if (issues.length) throw new KilnError('config', issues.map((i) => i.message).join('; '), 'fix the fields marked in the form');
  const model = resolveModel(config, vocabSize);
  const cost = checkModelCost(model, config.batchSize, budget, planner);
  return {
    numParams: cost.numParams,
    flopsPerToken: flopsPerToken(model),
    memoryBytes: cost.memoryBytes,
    largestBinding: limits ? cost.largest : 0,
    largestName: limits ? cost.largestName : '',
    fits: cost.fits,
    problems: cost.problems,
  };
}
