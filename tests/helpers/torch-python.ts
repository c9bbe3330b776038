// The Python that runs `kiln scale`'s trainer in tests: one with torch and numpy
// (Debian's python3-torch; KILN_PYTHON overrides), or why there is none, so the torchrun
// tests skip with a reason where PyTorch is missing.
import { spawnSync } from 'node:child_process';

export function findPython(): { python: string } | { missing: string } {
  const tried: string[] = [];
  for (const py of [process.env.KILN_PYTHON, 'python3', '/usr/bin/python3']) {
    if (!py) continue;
    const r = spawnSync(py, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { python: py };
    tried.push(`${py}: ${r.error ? r.error.message : r.stderr.trim().split('\n').pop()}`);
  }
  return { missing: `no python3 with torch and numpy (${tried.join('; ')}); apt-get install -y python3-torch` };
}
