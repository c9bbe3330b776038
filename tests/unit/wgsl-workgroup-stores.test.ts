// Every shader, in every variant the preprocessor can make of it, stores workgroup
// vectors only whole (tests/helpers/wgsl-workgroup-stores.ts says why: a component
// store races with its neighbours' on Metal, and no CPU or Vulkan run shows it).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { declaredSwitches, expandIncludes, preprocess, SHADER_FEATURES } from '../../src/backends/webgpu/shader-variants.ts';
import { componentStores, vectorDepth } from '../helpers/wgsl-workgroup-stores.ts';

const dir = new URL('../../shaders/', import.meta.url);
const sources: Record<string, string> = {};
for (const f of readdirSync(dir)) if (f.endsWith('.wgsl')) sources[f.slice(0, -5)] = readFileSync(new URL(f, dir), 'utf8');

function subsets<T>(xs: readonly T[]): T[][] {
  return xs.reduce<T[][]>((acc, x) => acc.concat(acc.map((s) => [...s, x])), [[]]);
}

/** Every preprocessed text of a shader: each feature set times each set of its switches. */
function variants(name: string): Array<{ key: string; code: string }> {
  const src = expandIncludes(sources[name], sources, name);
  const out: Array<{ key: string; code: string }> = [];
  for (const features of subsets(Object.keys(SHADER_FEATURES))) {
    for (const switches of subsets([...declaredSwitches(src, name)])) {
      let code: string;
      try {
        code = preprocess(src, new Set(features), name, new Set(switches));
      } catch (e) {
        // A switch no block of this file tests (an included file's) is refused by design.
        if (/turned on but no #if tests it/.test((e as Error).message)) continue;
        throw e;
      }
      out.push({ key: `${name}[${features.join('+')}](${switches.join(',')})`, code });
    }
  }
  return out;
}

describe('the component-store check', () => {
  it('finds the depth at which a type holds vectors', () => {
    expect(vectorDepth('vec4f')).toBe(0);
    expect(vectorDepth('vec2<u32>')).toBe(0);
    expect(vectorDepth('mat4x4f')).toBe(0);
    expect(vectorDepth('array<vec4f, COPIES * TILE_K * (BLOCK / 4u) * WG_Y>')).toBe(1);
    expect(vectorDepth('array<array<vec2u, 4>, N>')).toBe(2);
    expect(vectorDepth('array<f32, WG>')).toBe(-1);
    expect(vectorDepth('atomic<u32>')).toBe(-1);
  });

  it('reports every way of storing part of a workgroup vector, and nothing else', () => {
    const src = [
      'var<workgroup> t: array<vec4f, 64>;',
      'var<workgroup> v: vec2u;',
      'var<workgroup> s: array<f32, 64>;',
      'var<private> p: array<vec4f, 4>;',
      'fn f(i: u32, c: u32) {',
      '  t[i] = vec4f(1.0);',          // whole: fine
      '  t[i][c] = 1.0;',              // component by index
      '  t[i + 1u].y = 2.0;',          // component by name
      '  t[i] [c] += 1.0;',            // compound, odd spacing
      '  v.x = 1u;',                   // a plain vector variable
      '  v = vec2u(0u);',              // whole: fine
      '  s[i] = 1.0;',                 // scalars: fine
      '  p[i][c] = 1.0;',              // private memory: fine
      '  let x = t[i][c] == 1.0;',     // a comparison is a read
      '  let q = &t[i];',              // a pointer could hide a component store
      '  // t[i][c] = 3.0;  (a comment)',
      '  t[i].w++;',
      '}',
    ].join('\n');
    const found = componentStores(src);
    expect(found.map((s) => [s.line, s.variable])).toEqual([[7, 't'], [8, 't'], [9, 't'], [10, 'v'], [15, 't'], [17, 't']]);
    expect(found[0].why).toMatch(/part of a vector/);
    expect(found[4].why).toMatch(/pointer/);
  });
});

describe('shaders store workgroup vectors whole', () => {
  const names = Object.keys(sources).sort();
  it('reads the shader folder', () => {
    expect(names).toContain('matmul_tiles');
    expect(names).toContain('attention');
  });
  it.each(names)('%s.wgsl', (name) => {
    const bad: string[] = [];
    for (const v of variants(name)) {
      for (const s of componentStores(v.code)) bad.push(`${v.key}:${s.line}: ${s.text} -- ${s.why}`);
    }
    expect(bad).toEqual([]);
  });
});
