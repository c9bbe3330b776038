// Where a run's backend comes from: the environment (asked once: finding a GPU is slow),
// what a run may use there, and a backend made and loaded only after the model is known
// to fit. The fit is the same decision, in the same words, as the settings panel's and
// the CLI's (src/core/budget.ts), so a run the form allowed is not refused here.
import type { Backend, TrainState } from '../backends/backend.ts';
import { adapterBudget, assertModelFits, type Budget, type Planner } from '../core/budget.ts';
import type { RunConfig } from '../core/config.ts';
import { memoryEstimate, type ModelConfig } from '../core/model-spec.ts';
import type { ConfigFit, LabBackendKind, LabEnvironment } from './api.ts';
import { configFit, webgpuPlanner } from './config-fit.ts';

export interface BackendDeps {
  environment(): Promise<LabEnvironment>;
  /** A fresh backend of this kind (a new GPU device for webgpu: recover() needs one after a loss). */
  createBackend(kind: LabBackendKind): Promise<Backend>;
  /** The device as a person reads it (default: backend.info.device, the raw adapter string). */
  deviceName?(backend: Backend): string;
  /**
   * What a run on this backend may use (default: a browser tab's, adapterBudget). `kiln
   * serve` passes this machine's memory, so a Node run is not held to a tab's 4 GiB.
   */
  budget?(kind: LabBackendKind, limits: LabEnvironment['limits'] | null): Budget;
  /**
   * The bytes a run allocates on this backend, where the backend plans its own (kiln serve
   * on CUDA: the addon's plan, bf16 and all); default: WebGPU's buffer plan on a GPU, the
   * CPU reference's estimate on the CPU.
   */
  planner?(kind: LabBackendKind): Planner | undefined;
}

export class LabBackends {
  private envPromise: Promise<LabEnvironment> | null = null;

  constructor(private readonly deps: BackendDeps) {}

  environment(): Promise<LabEnvironment> {
    this.envPromise ??= this.deps.environment();
    return this.envPromise;
  }

  async checkConfig(config: RunConfig, vocabSize: number, kind: LabBackendKind): Promise<ConfigFit> {
    const limits = kind === 'webgpu' ? (await this.environment()).limits : null;
    return configFit(config, vocabSize, limits, this.budgetFor(kind, limits), this.plannerFor(kind, limits));
  }

  /** A new backend with a state loaded (freed again when the load fails), after the budget said the model fits. */
  async load(kind: LabBackendKind, model: ModelConfig, state: TrainState, batchSize: number): Promise<Backend> {
    const limits = kind === 'webgpu' ? (await this.environment()).limits : null;
    assertModelFits(model, batchSize, this.budgetFor(kind, limits), this.plannerFor(kind, limits));
    const backend = await this.deps.createBackend(kind);
    try {
      await backend.load(model, state);
    } catch (e) {
      backend.dispose();
      throw e;
    }
    return backend;
  }

  deviceName(backend: Backend): string {
    return this.deps.deviceName?.(backend) ?? backend.info.device;
  }

  /** The memory a run takes on a backend: its own reckoning where it has one. */
  memoryBytes(backend: Backend, model: ModelConfig, batchSize: number): number {
    return backend.memoryBytes?.(model, batchSize) ?? memoryEstimate(model, batchSize).total;
  }

  private plannerFor(kind: LabBackendKind, limits: LabEnvironment['limits'] | null): Planner | undefined {
    return this.deps.planner?.(kind) ?? (limits ? webgpuPlanner(limits) : undefined);
  }

  private budgetFor(kind: LabBackendKind, limits: LabEnvironment['limits'] | null): Budget {
    return this.deps.budget?.(kind, limits) ?? adapterBudget(limits);
  }
}
