// A static check of one rule of the WGSL memory model that SwiftShader (and Vulkan on
// NVIDIA) can never show by running a kernel: a store to one component of a vector
// "may access all of the memory locations associated with that vector" (WGSL spec,
// "Component Reference from Vector Memory View"), so two invocations that store
// different components of one vector in workgroup memory race unless a barrier
// separates them. Metal's compiler does turn such stores into read-modify-writes of
// the whole vector (gpuweb/gpuweb#2112). Kiln's rule: a workgroup vector (or matrix) is
// only ever stored whole. This finds every store that is not, and every pointer taken
// into such memory (which could hide one).

export interface ComponentStore {
  /** The workgroup variable stored into. */
  variable: string;
  /** 1-based line of the store in the text given. */
  line: number;
  /** The statement, trimmed. */
  text: string;
  why: string;
}

/** The text with // and /* *\/ comments replaced by spaces (line breaks kept, so line numbers hold). */
export function stripComments(src: string): string {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/\/\/[^\n]*/g, (c) => ' '.repeat(c.length));
}

/**
 * How many index steps from the variable reach a vector or matrix value, or -1 when the
 * type holds none: `vec4f` 0, `array<vec4f, N>` 1, `array<array<vec2u, 4>, N>` 2.
 * Structs are not followed: a struct type in workgroup memory counts as holding vectors
 * (unknown layout), so any member store is reported.
 */
export function vectorDepth(type: string): number {
  const t = type.replace(/\s+/g, '');
  if (/^(vec[234](<\w+>|[fhiu])?|mat[234]x[234](<\w+>|[fh])?)$/.test(t)) return 0;
  const arr = /^array<(.*)>$/.exec(t);
  if (arr) {
    // The element type is everything before the last top-level comma (or all of it).
    let depth = 0;
    let cut = arr[1].length;
    for (let i = 0; i < arr[1].length; i++) {
      const ch = arr[1][i];
      if (ch === '<') depth++;
      else if (ch === '>') depth--;
      else if (ch === ',' && depth === 0) cut = i;
    }
    const inner = vectorDepth(arr[1].slice(0, cut));
    return inner < 0 ? -1 : inner + 1;
  }
  if (/^(f32|f16|i32|u32|bool|atomic<\w+>)$/.test(t)) return -1;
  return 0; // a struct or alias: treat as a vector at the top, so member stores are caught
}

/** The workgroup variables of a shader whose type holds vectors or matrices, with their vectorDepth. */
export function workgroupVectors(code: string): Map<string, number> {
  const out = new Map<string, number>();
  const decl = /var\s*<\s*workgroup\s*>\s*(\w+)\s*:\s*([^;]+);/g;
  for (const m of code.matchAll(decl)) {
    const d = vectorDepth(m[2]);
    if (d >= 0) out.set(m[1], d);
  }
  return out;
}

/** Length of the access chain ([...] or .member) starting at `at`, and where it ends. */
function accessChain(code: string, at: number): { steps: number; end: number } {
  let i = at;
  let steps = 0;
  for (;;) {
    while (code[i] === ' ' || code[i] === '\t' || code[i] === '\n') i++;
    if (code[i] === '[') {
      let depth = 0;
      for (; i < code.length; i++) {
        if (code[i] === '[') depth++;
        else if (code[i] === ']' && --depth === 0) break;
      }
      i++;
      steps++;
    } else if (code[i] === '.' && /[A-Za-z_]/.test(code[i + 1] ?? '')) {
      i++;
      while (/\w/.test(code[i] ?? '')) i++;
      steps++;
    } else {
      return { steps, end: i };
    }
  }
}

/** Every store to part of a workgroup vector in `src` (WGSL, after preprocessing), and every pointer into one. */
export function componentStores(src: string): ComponentStore[] {
  const code = stripComments(src);
  const vars = workgroupVectors(code);
  const out: ComponentStore[] = [];
  const lineOf = (i: number) => code.slice(0, i).split('\n').length;
  const statement = (i: number) => {
    const start = Math.max(code.lastIndexOf(';', i - 1), code.lastIndexOf('{', i - 1), code.lastIndexOf('}', i - 1)) + 1;
    const end = code.indexOf(';', i);
    return code.slice(start, end < 0 ? undefined : end + 1).replace(/\s+/g, ' ').trim();
  };
  for (const [name, depth] of vars) {
    const use = new RegExp(`(&\\s*)?\\b${name}\\b`, 'g');
    for (const m of code.matchAll(use)) {
      const at = m.index! + m[0].length;
      if (/var\s*<\s*workgroup\s*>\s*$/.test(code.slice(Math.max(0, m.index! - 40), m.index))) continue; // the declaration
      const chain = accessChain(code, at);
      const rest = code.slice(chain.end);
      if (m[1]) {
        out.push({ variable: name, line: lineOf(m.index!), text: statement(m.index!), why: 'a pointer into workgroup vector memory (a store through it could write one component)' });
        continue;
      }
      const assign = /^\s*(=(?!=)|[-+*/%&|^]=|<<=|>>=|\+\+|--)/.exec(rest);
      if (assign && chain.steps > depth) {
        out.push({ variable: name, line: lineOf(m.index!), text: statement(m.index!), why: `stores part of a vector (${chain.steps - depth} access step(s) into it)` });
      }
    }
  }
  return out.sort((a, b) => a.line - b.line);
}
