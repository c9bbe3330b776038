// The shader-variant preprocessor (src/backends/webgpu/shader-variants.ts): which lines
// survive, the enable directive, line numbers kept, errors for malformed blocks; and
// which features a device gets.
import { describe, expect, it } from 'vitest';
import { PipelineCache } from '../../src/backends/webgpu/kernel.ts';
import { declaredSwitches, expandIncludes, preprocess, shaderFeatures, variantKey } from '../../src/backends/webgpu/shader-variants.ts';

const SRC = [
  '// header',
  'a;',
  '// #if subgroups',
  'sg;',
  '// #else',
  'wg;',
  '// #endif',
  'b;',
].join('\n');

describe('shader variants', () => {
  it('keeps the #if branch and prepends enable when the feature is on', () => {
    const out = preprocess(SRC, new Set(['subgroups']));
    expect(out.split('\n')).toEqual(['enable subgroups; // header', 'a;', '', 'sg;', '', '', '', 'b;']);
  });

  it('keeps the #else branch and adds nothing when it is off', () => {
    expect(preprocess(SRC, new Set()).split('\n')).toEqual(['// header', 'a;', '', '', '', 'wg;', '', 'b;']);
  });

  it('leaves a shader without directives untouched, feature on or off', () => {
    const plain = '// x\n@compute @workgroup_size(1) fn main() {}\n';
    expect(preprocess(plain, new Set(['subgroups']))).toBe(plain);
    expect(preprocess(plain, new Set())).toBe(plain);
  });

  it('nests, and an #if without #else keeps nothing when off', () => {
    const src = ['// #if subgroups', 'x;', '// #if subgroups', 'y;', '// #else', 'z;', '// #endif', '// #endif', 'w;'].join('\n');
    expect(preprocess(src, new Set()).split('\n').filter(Boolean)).toEqual(['w;']);
    expect(preprocess(src, new Set(['subgroups'])).split('\n').filter(Boolean)).toEqual(['enable subgroups; ', 'x;', 'y;', 'w;']);
  });

  it('rejects unknown features and unbalanced blocks, naming the line', () => {
    expect(() => preprocess('// #if shader_f17\n// #endif', new Set(), 'foo')).toThrow(/foo\.wgsl:1: #if shader_f17/);
    expect(() => preprocess('// #if subgroups\nx;', new Set(), 'foo')).toThrow(/without #endif/);
    expect(() => preprocess('x;\n// #endif', new Set(), 'foo')).toThrow(/foo\.wgsl:2: #endif without #if/);
    expect(() => preprocess('// #if subgroups\n// #else\n// #else\n// #endif', new Set(), 'foo')).toThrow(/second #else/);
  });

  it('keeps branches by the switches a kernel turns on, and checks them against the shader\'s #switch line', () => {
    const src = ['// #switch a4 b4', '// #if a4', 'va;', '// #else', 'sa;', '// #endif', '// #if !b4', 'sb;', '// #endif', 'x;'].join('\n');
    const kept = (on: string[]) => preprocess(src, new Set(), 'mm', new Set(on)).split('\n').filter(Boolean);
    expect(kept([])).toEqual(['sa;', 'sb;', 'x;']);
    expect(kept(['a4'])).toEqual(['va;', 'sb;', 'x;']);
    expect(kept(['a4', 'b4'])).toEqual(['va;', 'x;']);
    // Line numbers stay those of the file: the #switch line is blanked, not removed.
    expect(preprocess(src, new Set(), 'mm', new Set(['b4'])).split('\n')).toHaveLength(10);
    expect(() => preprocess(src, new Set(), 'mm', new Set(['c4']))).toThrow('mm.wgsl: no switch c4 (it declares a4, b4)');
    expect(() => preprocess('// #if a4\n// #endif', new Set(), 'mm', new Set())).toThrow(/mm\.wgsl:1: #if a4: not one of subgroups/);
    expect(() => preprocess('// #switch subgroups', new Set(), 'mm')).toThrow('that is a device feature');
    expect(() => preprocess('// #switch', new Set(), 'mm')).toThrow('#switch names nothing');
    expect(declaredSwitches('x\n// #switch a4\n// #switch b4 c', 'mm')).toEqual(new Set(['a4', 'b4', 'c']));
  });

  it('nests switches and features both ways, #else under #if !switch included', () => {
    const src = [
      '// #switch a4', '// #if subgroups', '// #if !a4', 'sg_scalar;', '// #else', 'sg_vec;', '// #endif', '// #endif',
      '// #if a4', '// #if !subgroups', 'wg_vec;', '// #endif', '// #endif',
    ].join('\n');
    const kept = (f: string[], on: string[]) => preprocess(src, new Set(f), 'n', new Set(on)).split('\n').filter(Boolean);
    expect(kept([], [])).toEqual([]);
    expect(kept(['subgroups'], [])).toEqual(['enable subgroups; ', 'sg_scalar;']);
    expect(kept(['subgroups'], ['a4'])).toEqual(['enable subgroups; ', 'sg_vec;']);
    expect(kept([], ['a4'])).toEqual(['wg_vec;']);
  });

  it('rejects directive-like lines it does not know, names that are not own features, and switches no block tests', () => {
    expect(() => preprocess('// #if subgroups\n// #elif subgroups\n// #endif', new Set(), 'e')).toThrow(/e\.wgsl:2: "\/\/ #elif subgroups": not a directive/);
    expect(() => preprocess('// #switch a4\n// #if a4 b4\n// #endif', new Set(), 'e')).toThrow(/e\.wgsl:2: .*not a directive/);
    expect(() => preprocess('// #if toString\n// #endif', new Set(), 'e')).toThrow(/#if toString: not one of subgroups/);
    expect(() => preprocess('// #if !constructor\n// #endif', new Set(), 'e')).toThrow(/#if !constructor: not one of/);
    expect(() => preprocess('// #switch a4 b4\n// #if a4\n// #endif', new Set(), 'e', new Set(['b4']))).toThrow('switch b4 is turned on but no #if tests it');
    // A test inside a dropped branch still counts: the switch is in use.
    expect(preprocess('// #switch b4\n// #if subgroups\n// #if b4\nx;\n// #endif\n// #endif', new Set(), 'e', new Set(['b4'])).trim()).toBe('');
    // #include lines are expandIncludes' business, left alone here.
    expect(preprocess('// #include lib', new Set())).toBe('// #include lib');
  });

  it('PipelineCache compiles one module per set of switches, whatever their order', () => {
    const modules: string[] = [];
    const device = {
      features: new Set<string>(),
      createShaderModule: (d: { label: string; code: string }) => { modules.push(d.label); return { label: d.label }; },
      createComputePipeline: (d: { label: string }) => ({ label: d.label }),
    } as unknown as GPUDevice;
    const src = '// #switch a4 b4\n// #if a4\na;\n// #endif\n// #if b4\nb;\n// #endif\n@compute @workgroup_size(1) fn main() {}';
    const k = new PipelineCache(device, { mm: src });
    const p1 = k.pipeline({ shader: 'mm', entry: 'main', switches: ['b4', 'a4'] });
    const p2 = k.pipeline({ shader: 'mm', entry: 'main', switches: ['a4', 'b4', 'a4'] });
    k.pipeline({ shader: 'mm', entry: 'main', switches: ['a4'] });
    k.pipeline({ shader: 'mm', entry: 'main' });
    expect(p2).toBe(p1);
    expect(modules).toEqual(['mm[](a4,b4)', 'mm[](a4)', 'mm[]']);
    expect(() => k.pipeline({ shader: 'mm', entry: 'main', switches: ['c4'] })).toThrow('no switch c4');
  });

  it('negates a feature with !', () => {
    const src = '// #if !subgroups\nwg;\n// #else\nsg;\n// #endif';
    expect(preprocess(src, new Set()).split('\n').filter(Boolean)).toEqual(['wg;']);
    expect(preprocess(src, new Set(['subgroups'])).split('\n').filter(Boolean)).toEqual(['enable subgroups; ', 'sg;']);
  });

  it('names variants by their sorted features', () => {
    expect(variantKey(new Set())).toBe('');
    expect(variantKey(new Set(['subgroups']))).toBe('subgroups');
  });

  it('uses subgroups only with the device feature and the subgroup_id language feature, unless turned off', () => {
    const yes = { hasSubgroups: true, wgslFeatures: new Set(['subgroup_id']) };
    const prev = process.env.KILN_NO_SUBGROUPS;
    delete process.env.KILN_NO_SUBGROUPS;
    try {
      expect([...shaderFeatures(yes)]).toEqual(['subgroups']);
      expect([...shaderFeatures({ ...yes, hasSubgroups: false })]).toEqual([]);
      expect([...shaderFeatures({ ...yes, wgslFeatures: new Set() })]).toEqual([]);
      expect([...shaderFeatures(yes, { noSubgroups: true })]).toEqual([]);
      process.env.KILN_NO_SUBGROUPS = '1';
      expect([...shaderFeatures(yes)]).toEqual([]);
      process.env.KILN_NO_SUBGROUPS = '0';
      expect([...shaderFeatures(yes)]).toEqual(['subgroups']);
    } finally {
      if (prev === undefined) delete process.env.KILN_NO_SUBGROUPS;
      else process.env.KILN_NO_SUBGROUPS = prev;
    }
  });
});

describe('expandIncludes', () => {
  const sources = { lib: 'fn one() -> u32 {\n  return 1u;\n}', nested: '// #include lib' };
  it('replaces a whole `// #include NAME` line with NAME.wgsl, and nothing else', () => {
    expect(expandIncludes('a\n  // #include lib\nb // #include lib', sources)).toBe('a\nfn one() -> u32 {\n  return 1u;\n}\nb // #include lib');
  });
  it('refuses a missing file and a second level, naming the line', () => {
    expect(() => expandIncludes('x\n// #include nope', sources, 'k')).toThrow('k.wgsl:2: #include nope: no nope.wgsl');
    expect(() => expandIncludes('// #include nested', sources, 'k')).toThrow('one level only');
  });
});
