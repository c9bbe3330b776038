// Shader variants for optional WebGPU features, and shared WGSL text. A shader keeps its portable code as the
// fallback and marks the feature-dependent parts with whole-line directives:
//
//   // #if subgroups
//   ... code that uses subgroupAdd, @builtin(subgroup_id), ...
//   // #else
//   ... the same thing through workgroup memory (the fallback) ...
//   // #endif
//
// preprocess() keeps one branch of each block and blanks the directive lines and the
// dropped branch (line numbers in compiler messages stay those of the .wgsl file); when
// a feature is on and the shader tests it, the feature's `enable` directive goes in
// front of the first line. Blocks may nest; only the names in SHADER_FEATURES may be
// tested, and an unknown name or an unbalanced block is an error.
//
// A shader may also declare switches of its own, chosen per kernel rather than per
// device: a whole line `// #switch NAME ...` declares them, and `// #if NAME` tests them
// as it tests a feature (`// #if !NAME`, for features too, keeps its first branch when
// NAME is off). The matmul kernels use them for the operand load width (`a4`: A read as
// vec4s), which changes a binding's type: one entry point, its variants compiled as
// separate modules, where WGSL alone would need one entry per combination.
//
// WGSL has no includes, so a whole line `// #include NAME` (expandIncludes) stands for the
// text of NAME.wgsl: kernels that share declarations and helpers (matmul.wgsl and
// matmul_8x8.wgsl share matmul_tiles.wgsl) keep one copy of them. Included files may
// not include others; line numbers in compiler messages are those of the expanded text.
//
// Which features a PipelineCache compiles with is fixed when it is made (shaderFeatures()
// decides from the device); its pipeline keys name the variant. KILN_NO_SUBGROUPS=1 in the
// environment (or noSubgroups: true) forces the fallback, so both paths can be tested and
// timed on one device.
//
// `subgroups` needs two things: the device feature, and the WGSL language feature
// `subgroup_id` (built-ins subgroup_id and num_subgroups). Without subgroup_id a shader
// has no portable way to give each subgroup its own slot in workgroup memory
// (local_invocation_index / subgroup_size is what most devices do, but no API promises
// it), so such devices get the fallback.

/** Features a shader may test with `// #if NAME`, and the directive each needs when on. */
export const SHADER_FEATURES = { subgroups: 'enable subgroups;' } as const;
export type ShaderFeature = keyof typeof SHADER_FEATURES;

const DIRECTIVE = /^\s*\/\/\s*#(if|else|endif)\b\s*(\S*)\s*$/;
const SWITCH = /^\s*\/\/\s*#switch\b(.*)$/;
/** Any line that looks like a directive: one that matches none of the above is a mistake (e.g. `#elif`), not a comment. */
const ANY_DIRECTIVE = /^\s*\/\/\s*#(\w+)/;

/** Whether `name` is one of SHADER_FEATURES (own keys only: not `constructor` and the like). */
export function isShaderFeature(name: string): name is ShaderFeature {
  return Object.hasOwn(SHADER_FEATURES, name);
}

const INCLUDE = /^\s*\/\/\s*#include\s+(\S+)\s*$/;

/** The source with each `// #include NAME` line replaced by the text of NAME.wgsl from `sources`. */
export function expandIncludes(source: string, sources: Readonly<Record<string, string>>, name = 'shader'): string {
  return source.split('\n').map((line, i) => {
    const m = INCLUDE.exec(line);
    if (!m) return line;
    const text = sources[m[1]];
    if (text === undefined) throw new Error(`${name}.wgsl:${i + 1}: #include ${m[1]}: no ${m[1]}.wgsl in shaders/`);
    if (text.split('\n').some((l) => INCLUDE.test(l))) throw new Error(`${name}.wgsl:${i + 1}: #include ${m[1]}: ${m[1]}.wgsl includes another file (one level only)`);
    return text;
  }).join('\n');
}

/** The switches a shader (after expandIncludes) declares with `// #switch` lines. */
export function declaredSwitches(source: string, name = 'shader'): Set<string> {
  const out = new Set<string>();
  source.split('\n').forEach((line, i) => {
    const m = SWITCH.exec(line);
    if (!m) return;
    const names = m[1].trim().split(/\s+/).filter(Boolean);
    if (!names.length) throw new Error(`${name}.wgsl:${i + 1}: #switch names nothing`);
    for (const n of names) {
      if (!/^[a-z][a-z0-9_]*$/.test(n)) throw new Error(`${name}.wgsl:${i + 1}: #switch ${n}: a switch is a lower-case name`);
      if (isShaderFeature(n)) throw new Error(`${name}.wgsl:${i + 1}: #switch ${n}: that is a device feature`);
      out.add(n);
    }
  });
  return out;
}

/**
 * The source with one branch of every `// #if` block kept: the #if branch where its name
 * is a feature that is on or a switch that is on (`switches`), else the #else branch.
 * Every switch turned on must be declared by the shader (`// #switch`).
 */
export function preprocess(source: string, features: ReadonlySet<string>, name = 'shader', switches: ReadonlySet<string> = new Set()): string {
  const declared = declaredSwitches(source, name);
  for (const sw of switches) {
    if (!declared.has(sw)) throw new Error(`${name}.wgsl: no switch ${sw} (it declares ${[...declared].join(', ') || 'none'})`);
  }
  const lines = source.split('\n');
  // One entry per open block: is its current branch kept, and was its parent kept?
  const stack: Array<{ feature: string; keep: boolean; parentKeeps: boolean; inElse: boolean }> = [];
  const used = new Set<ShaderFeature>();
  const keeping = () => stack.length === 0 || (stack[stack.length - 1].keep && stack[stack.length - 1].parentKeeps);
  const tested = new Set<string>();
  const out = lines.map((line, i) => {
    if (SWITCH.test(line)) return '';
    const d = DIRECTIVE.exec(line);
    const where = `${name}.wgsl:${i + 1}`;
    if (!d) {
      const odd = ANY_DIRECTIVE.exec(line);
      if (odd && odd[1] !== 'include') throw new Error(`${where}: "${line.trim()}": not a directive (#if NAME, #if !NAME, #else, #endif, #switch NAMES)`);
      return keeping() ? line : '';
    }
    const [, op, arg] = d;
    if (op === 'if') {
      const not = arg.startsWith('!');
      const flag = not ? arg.slice(1) : arg;
      let on: boolean;
      if (declared.has(flag)) {
        tested.add(flag);
        on = switches.has(flag);
      } else if (isShaderFeature(flag)) {
        used.add(flag);
        on = features.has(flag);
      } else {
        throw new Error(`${where}: #if ${arg || '(nothing)'}: not one of ${[...Object.keys(SHADER_FEATURES), ...declared].join(', ')}`);
      }
      stack.push({ feature: arg, keep: on !== not, parentKeeps: keeping(), inElse: false });
    } else {
      const top = stack[stack.length - 1];
      if (!top) throw new Error(`${where}: #${op} without #if`);
      if (arg) throw new Error(`${where}: #${op} takes nothing after it`);
      if (op === 'else') {
        if (top.inElse) throw new Error(`${where}: second #else for #if ${top.feature}`);
        top.inElse = true;
        top.keep = !top.keep;
      } else {
        stack.pop();
      }
    }
    return '';
  });
  if (stack.length) throw new Error(`${name}.wgsl: #if ${stack[stack.length - 1].feature} without #endif`);
  // A switch turned on that no block tests would only make a module of its own with
  // the same code: a caller left behind by a shader edit.
  for (const sw of switches) {
    if (!tested.has(sw)) throw new Error(`${name}.wgsl: switch ${sw} is turned on but no #if tests it`);
  }
  const enables = [...used].filter((f) => features.has(f)).map((f) => SHADER_FEATURES[f]);
  if (enables.length) out[0] = `${enables.join(' ')} ${out[0]}`;
  return out.join('\n');
}

/** A cache key part naming a feature set: '' for the fallback, else the sorted names joined by '+'. */
export function variantKey(features: ReadonlySet<string>): string {
  return [...features].sort().join('+');
}

export interface ShaderVariantOptions {
  /** Compile the fallback even where the device has subgroups (also: KILN_NO_SUBGROUPS=1). */
  noSubgroups?: boolean;
}

/** What shaderFeatures() needs to know of a device (GpuContext has it). */
export interface VariantSupport {
  hasSubgroups: boolean;
  /** WGSL language features (navigator.gpu.wgslLanguageFeatures). */
  wgslFeatures: ReadonlySet<string>;
}

function envNoSubgroups(): boolean {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  const v = p?.env?.KILN_NO_SUBGROUPS;
  return !!v && v !== '0';
}

/** The shader features to compile with on this device: every one it supports unless turned off. */
export function shaderFeatures(gpu: VariantSupport, opts: ShaderVariantOptions = {}): Set<ShaderFeature> {
  const out = new Set<ShaderFeature>();
  if (gpu.hasSubgroups && gpu.wgslFeatures.has('subgroup_id') && !opts.noSubgroups && !envNoSubgroups()) out.add('subgroups');
  return out;
}
