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

/**
 * A Python whose torch has FSDP that runs on the CPU (torch >= 2.2, FullyShardedDataParallel
 * with use_orig_params and torch.distributed.checkpoint.state_dict): $KILN_FSDP_PYTHON, else
 * python3, /usr/bin/python3, or the Debian 13 chroot that scripts/torch2-chroot.sh installs
 * (.ci/run does); or why there is none.
 */
export function findFsdpPython(): { python: string; version: string } | { missing: string } {
  const tried: string[] = [];
  const probe = 'import torch, numpy\nfrom torch.distributed.fsdp import FullyShardedDataParallel\n'
    + 'from torch.distributed.checkpoint.state_dict import get_state_dict\nprint(torch.__version__)';
  for (const py of [process.env.KILN_FSDP_PYTHON, 'python3', '/usr/bin/python3', '/usr/local/bin/kiln-torch2-python3']) {
    if (!py) continue;
    const r = spawnSync(py, ['-c', probe], { encoding: 'utf8', cwd: '/tmp' });
    if (r.status === 0) return { python: py, version: r.stdout.trim() };
    tried.push(`${py}: ${r.error ? r.error.message : r.stderr.trim().split('\n').pop()}`);
  }
  return { missing: `no python3 whose torch has FSDP on the CPU (torch >= 2.2: ${tried.join('; ')}); bash scripts/torch2-chroot.sh installs one` };
}
