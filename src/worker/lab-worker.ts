// The lab's module web worker: a LabSession on this browser's GPU (navigator.gpu is
// there in Chromium's dedicated workers), or on the CPU reference, exposed to the page
// through comlink. The page names where the bundled datasets live in the worker's
// `name` (the worker's own URL says nothing about the site's base path). Besides the
// LabApi it builds the `kiln scale` folder for "Run on a cluster" (LabSession.scaleFolder),
// with the trainer script Vite bundles from scale/train_ddp.py (the file the CLI copies).
import { expose, transferHandlers } from 'comlink';
import type { Backend } from '../backends/backend.ts';
import { CpuBackend } from '../backends/cpu.ts';
import { WebGpuBackend } from '../backends/webgpu/backend.ts';
import { requestGpu, type GpuContext } from '../backends/webgpu/device.ts';
import { fp32Peak } from '../backends/webgpu/peaks.ts';
import { KilnError } from '../core/errors.ts';
import { openRunStore } from '../store/idb-store.ts';
import type { LabBackendKind, LabEnvironment } from './api.ts';
import { LabSession } from './lab-session.ts';
import trainerScript from '../../scale/train_ddp.py?raw';

interface WorkerName {
  datasets: string;
}

function settings(): WorkerName {
  try {
    const parsed = JSON.parse(self.name) as Partial<WorkerName>;
    if (typeof parsed.datasets === 'string') return { datasets: parsed.datasets };
  } catch {
    // Fall through to the default.
  }
  return { datasets: new URL('/datasets/', self.location.href).href };
}

/** The first device, found by environment(): the first backend uses it instead of asking again. */
let firstGpu: GpuContext | null = null;

async function environment(): Promise<LabEnvironment> {
  const none = (why: string): LabEnvironment => ({
    webgpu: false, webgpuWhy: why, device: '', isSoftware: false, limits: { maxStorageBufferBindingSize: 0, maxBufferSize: 0 },
  });
  if (!('gpu' in navigator) || !navigator.gpu) {
    return none('This browser does not offer WebGPU here. It ships in Chrome and Edge on desktop (113+) and Android 12+, Safari 26 (macOS, iOS, iPadOS) and Firefox 141+ on Windows; the page must be served over https or from localhost.');
  }
  try {
    firstGpu = await requestGpu();
  } catch (e) {
    return none(`WebGPU is there but found no usable GPU (${(e as Error).message}). Turn on hardware acceleration in the browser's settings and restart it, or update the graphics driver. WebGPU runs in Chrome and Edge on desktop and Android 12+, Safari 26 and Firefox 141+ on Windows.`);
  }
  const peak = firstGpu.isSoftware ? null : fp32Peak(firstGpu.adapterName);
  return {
    webgpu: true,
    device: firstGpu.displayName,
    isSoftware: firstGpu.isSoftware,
    limits: { maxStorageBufferBindingSize: firstGpu.limits.maxStorageBufferBindingSize, maxBufferSize: firstGpu.limits.maxBufferSize },
    ...(peak ? { peakFlops: peak.flops } : {}),
  };
}

async function createBackend(kind: LabBackendKind): Promise<Backend> {
  if (kind === 'cpu') return new CpuBackend();
  // A lost device cannot make buffers again: after the first backend, each gets its own.
  const gpu = firstGpu && !(await isLost(firstGpu)) ? firstGpu : null;
  firstGpu = null;
  try {
    return await WebGpuBackend.create(gpu ? { gpu } : {});
  } catch (e) {
    if (e instanceof KilnError) throw e;
    throw new KilnError('device', `the GPU could not be set up: ${(e as Error).message}`, 'reload the page; if it keeps failing, choose the CPU backend for a small model');
  }
}

async function isLost(gpu: GpuContext): Promise<boolean> {
  const lost = await Promise.race([gpu.device.lost.then(() => true), Promise.resolve(false)]);
  return lost;
}

async function loadBundled(file: string): Promise<Uint8Array> {
  const url = new URL(file, settings().datasets);
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new KilnError('data', `cannot load the bundled text ${file}: ${(e as Error).message}`, 'check the connection and reload, or open a text file of your own');
  }
  if (!res.ok) throw new KilnError('data', `cannot load the bundled text ${file}: HTTP ${res.status}`, 'reload the page, or open a text file of your own');
  return new Uint8Array(await res.arrayBuffer());
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// comlink sends a thrown Error as its message, name and stack; a KilnError's code and
// hint (what the page shows as the fix) go along, and the page's comlink copies them
// onto the Error it throws there.
const defaultThrow = transferHandlers.get('throw')!;
transferHandlers.set('throw', {
  canHandle: defaultThrow.canHandle,
  serialize(thrown: unknown) {
    const value = (thrown as { value: unknown }).value;
    if (value instanceof Error) {
      const extra = value instanceof KilnError ? { code: value.code, hint: value.hint } : {};
      return [{ isError: true, value: { message: value.message, name: value.name, stack: value.stack, ...extra } }, []];
    }
    return defaultThrow.serialize(thrown);
  },
  deserialize: defaultThrow.deserialize,
});

const deviceName = (b: Backend) => (b instanceof WebGpuBackend ? b.gpu.displayName : b.info.device);

// IndexedDB is there in workers; a browser that refuses it (some private windows) still trains, unsaved.
const store = () => openRunStore();

const session = new LabSession({ environment, createBackend, loadBundled, sha256, deviceName, store, trainerScript }, { autoSampleEvery: 10, autoSampleTokens: 80 });
expose(session);
