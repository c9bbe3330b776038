// Prints the WebGPU adapter Dawn finds as one JSON line: name and info, features (incl.
// Dawn's experimental subgroup matrix and its configs), limits, and whether a device
// with the optional features can be made. Run by bench/gpu/webgpu.sh from a folder
// whose node_modules/ holds the `webgpu` package:
//   node adapter.mjs [DAWN_FLAG...]     e.g. enable-dawn-features=allow_unsafe_apis
// Exit 3 when no adapter is found.
import { create, globals } from 'webgpu';

const flags = process.argv.slice(2);
const gpu = create(flags);
globalThis.__kilnKeepGpu = gpu; // Dawn crashes if this is collected while devices live
for (const [k, v] of Object.entries(globals)) if (!(k in globalThis)) globalThis[k] = v;

function plain(obj) {
  const o = {};
  if (!obj) return o;
  for (const k in obj) {
    const v = obj[k];
    if (typeof v === 'function') continue;
    o[k] = v !== null && typeof v === 'object' ? (Array.isArray(v) || Symbol.iterator in v ? [...v].map(plain1) : plain(v)) : v;
  }
  return o;
}
function plain1(v) {
  return v !== null && typeof v === 'object' ? plain(v) : v;
}

const out = { bench: 'adapter', flags };
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  out.error = 'no adapter';
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(3);
}
const info = plain(adapter.info);
out.name = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
out.info = info;
out.features = [...adapter.features].sort();
out.limits = plain(adapter.limits);
out.subgroup_matrix_feature = out.features.includes('chromium-experimental-subgroup-matrix');
const cfgs = adapter.info?.subgroupMatrixConfigs;
out.subgroup_matrix_configs = cfgs ? [...cfgs].map(plain1) : null;
out.shader_f16 = out.features.includes('shader-f16');
out.subgroups = out.features.includes('subgroups');
out.timestamp_query = out.features.includes('timestamp-query');
try {
  const want = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'].filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredFeatures: want });
  out.device_features = [...device.features].sort();
  const c = out.subgroup_matrix_configs?.[0];
  if (want.includes('chromium-experimental-subgroup-matrix') && c) {
    // Build (not run) a pipeline doing one multiply with the first config the adapter
    // reports: does the path through the driver (VK_KHR_cooperative_matrix) exist?
    const f16 = c.componentType === 'f16' || c.resultComponentType === 'f16';
    const code = `${f16 ? 'enable f16;\n' : ''}enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read_write> o: array<${c.resultComponentType}>;
@compute @workgroup_size(${info.subgroupMaxSize || 32})
fn main() {
  let l = subgroup_matrix_left<${c.componentType}, ${c.K}, ${c.M}>();
  let r = subgroup_matrix_right<${c.componentType}, ${c.N}, ${c.K}>();
  let m = subgroupMatrixMultiply<${c.resultComponentType}>(l, r);
  subgroupMatrixStore(&o, 0, m, false, ${c.N});
}`;
    device.pushErrorScope('validation');
    try {
      await device.createComputePipelineAsync({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
      const err = await device.popErrorScope();
      out.subgroup_matrix_pipeline = err ? `error: ${err.message.slice(0, 300)}` : `built (${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K})`;
    } catch (e) {
      await device.popErrorScope().catch(() => null);
      out.subgroup_matrix_pipeline = `error: ${String(e?.message ?? e).slice(0, 300)}`;
    }
  }
  device.destroy();
} catch (e) {
  out.device_error = String(e?.message ?? e).slice(0, 300);
}
process.stdout.write(JSON.stringify(out) + '\n');
