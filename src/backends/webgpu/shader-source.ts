// The WGSL sources in shaders/, by file name without extension. Under Vite (the lab,
// vitest) they are inlined at build time; under plain Node (the CLI through tsx)
// they are read from disk next to this module. KILN_SHADER_DIR, when set, names the
// folder to read them from instead (a bundled CLI, e.g. `.tools/kiln.mjs` on a GPU
// machine, has no shaders/ three folders above it).

let cache: Record<string, string> | null = null;

function fromVite(): Record<string, string> {
  // Vite replaces this call with an object literal; anywhere else it throws.
  const mods = import.meta.glob('../../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [path, src] of Object.entries(mods)) out[path.replace(/^.*\//, '').replace(/\.wgsl$/, '')] = src;
  return out;
}

/** The folder named by the environment variable KILN_SHADER_DIR, if set and non-empty. */
function shaderDirFromEnv(): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.KILN_SHADER_DIR || undefined;
}

async function fromDisk(): Promise<Record<string, string>> {
  const fs = await import(/* @vite-ignore */ 'node:fs' as string);
  const envDir = shaderDirFromEnv();
  const out: Record<string, string> = {};
  if (envDir) {
    const path = await import(/* @vite-ignore */ 'node:path' as string);
    for (const f of fs.readdirSync(envDir) as string[]) {
      if (f.endsWith('.wgsl')) out[f.slice(0, -5)] = fs.readFileSync(path.join(envDir, f), 'utf8');
    }
    return out;
  }
  const dir = new URL('../../../shaders/', import.meta.url);
  for (const f of fs.readdirSync(dir) as string[]) {
    if (f.endsWith('.wgsl')) out[f.slice(0, -5)] = fs.readFileSync(new URL(f, dir), 'utf8');
  }
  return out;
}

export async function shaderSources(): Promise<Record<string, string>> {
  if (cache) return cache;
  if (shaderDirFromEnv()) {
    cache = await fromDisk();
    return cache;
  }
  try {
    cache = fromVite();
  } catch {
    cache = await fromDisk();
  }
  return cache;
}
