// Helpers for bench/gpu/webgpu.sh (plain Node, no dependencies).
//   node report.mjs parity CPU_METRICS GPU_METRICS [TOL] [NAME]   one JSON line: per-step loss agreement
//   node report.mjs train METRICS [NAME]                     one JSON line: a training run's summary
//   node report.mjs table RESULTS_JSONL                       the short table printed last
import { readFileSync, existsSync } from 'node:fs';

const lines = (path) =>
  existsSync(path)
    ? readFileSync(path, 'utf8').split('\n').filter((l) => l.trim().startsWith('{')).flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      })
    : [];

const [cmd, ...args] = process.argv.slice(2);

if (cmd === 'parity') {
  // DESIGN.md: loss curves over the first steps agree with the reference to ~1e-3 relative.
  const [cpuPath, gpuPath, tolText, name] = args;
  const tol = Number(tolText ?? 1e-3);
  const cpu = new Map(lines(cpuPath).map((m) => [m.step, m]));
  const gpu = lines(gpuPath);
  let worst = 0;
  let worstStep = null;
  let worstGn = 0;
  let n = 0;
  for (const g of gpu) {
    const c = cpu.get(g.step);
    if (!c || typeof c.loss !== 'number') continue;
    n++;
    const rel = Math.abs(g.loss - c.loss) / Math.max(Math.abs(c.loss), 1e-12);
    if (!(rel <= worst)) {
      worst = rel;
      worstStep = g.step;
    }
    if (typeof g.grad_norm === 'number' && typeof c.grad_norm === 'number') {
      worstGn = Math.max(worstGn, Math.abs(g.grad_norm - c.grad_norm) / Math.max(Math.abs(c.grad_norm), 1e-12));
    }
  }
  const last = gpu.at(-1);
  const ok = n > 0 && n === cpu.size && worst <= tol;
  process.stdout.write(JSON.stringify({
    bench: 'parity', name: name ?? 'tiny cpu vs webgpu', steps_compared: n, steps_cpu: cpu.size, max_rel_loss: worst, at_step: worstStep, max_rel_grad_norm: worstGn,
    loss_cpu_last: cpu.get(last?.step)?.loss ?? null, loss_gpu_last: last?.loss ?? null, tol, ok,
  }) + '\n');
  process.exit(ok ? 0 : 1);
} else if (cmd === 'train') {
  const [path, name] = args;
  const ms = lines(path);
  const last = ms.at(-1);
  const vals = ms.filter((m) => typeof m.val_loss === 'number');
  const rates = ms.slice(Math.min(5, Math.floor(ms.length / 2))).map((m) => m.tokens_per_s).filter((x) => typeof x === 'number');
  const med = rates.length ? rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)] : null;
  process.stdout.write(JSON.stringify({
    bench: 'train_run', name: name ?? path, steps: last?.step ?? 0, first_loss: ms[0]?.loss ?? null, last_loss: last?.loss ?? null,
    val_loss: vals.at(-1)?.val_loss ?? null, median_tokens_per_s: med, elapsed_s: last?.elapsed_s ?? null, mfu: last?.mfu ?? null,
  }) + '\n');
} else if (cmd === 'table') {
  const rs = lines(args[0]);
  const rows = [];
  const row = (...c) => rows.push(c.map((x) => (x === undefined || x === null ? '-' : String(x))));
  const f = (x, d = 1) => (typeof x === 'number' ? x.toFixed(d) : '-');
  const e = (x) => (typeof x === 'number' ? x.toExponential(1) : '-');
  for (const r of rs) {
    switch (r.bench) {
      case 'adapter':
        if (r.error) row('adapter', r.flags?.join(' ') || 'default', r.error);
        else row('adapter', r.flags?.length ? 'unsafe-apis' : 'default', r.name,
          `f16 ${r.shader_f16 ? 'y' : 'n'} subgroups ${r.subgroups ? 'y' : 'n'} sg-matrix ${r.subgroup_matrix_feature ? 'y' : 'n'} configs ${r.subgroup_matrix_configs?.length ?? 0}${r.subgroup_matrix_pipeline ? ` pipeline: ${r.subgroup_matrix_pipeline}` : ''}`);
        break;
      case 'matmul':
        if (r.error) row('matmul', `${r.kernel}${r.tile ? ` t${r.tile}` : ''} ${r.M}`, 'error', String(r.error).slice(0, 60));
        else row('matmul', `${r.kernel}${r.tile ? ` t${r.tile}` : ''} ${r.M}${r.dawn_toggles ? ` [${r.dawn_toggles}]` : ''}`,
          `${f(r.gflops)} GFLOP/s${typeof r.pct_peak === 'number' ? ` (${f(r.pct_peak)}% peak)` : ''}`, `${f(r.ms, 3)} ms x${r.iters}${r.check !== 'ok' ? ` check ${r.check}` : ''}`);
        break;
      case 'matmul_best':
        row('matmul', `best ${r.M}${r.dawn_toggles ? ` [${r.dawn_toggles}]` : ''}`,
          `t${r.tile} ${f(r.gflops)} GFLOP/s${typeof r.pct_peak === 'number' ? ` (${f(r.pct_peak)}% peak)` : ''}`, `default tile ${r.default_tile}`);
        break;
      case 'attention':
        if (r.error) row('attention', `${r.impl} ${r.B},${r.T},${r.C},${r.NH}`, 'error', String(r.error).slice(0, 60));
        else row('attention', `${r.impl} ${r.pass} ${r.B},${r.T},${r.C},${r.NH}${r.dawn_toggles ? ` [${r.dawn_toggles}]` : ''}`,
          `${f(r.gflops, r.gflops < 10 ? 2 : 0)} GFLOP/s${typeof r.pct_peak === 'number' ? ` (${f(r.pct_peak)}% peak)` : ''}`, `${f(r.ms, 3)} ms x${r.iters}${r.check && r.check !== 'ok' ? ` check ${r.check}` : ''}`);
        break;
      case 'train':
        if (r.skipped) row('bench', `${r.preset} ${r.backend}`, 'skipped', String(r.skipped).slice(0, 60));
        else row('bench', `${r.preset} ${r.backend}${r.dawn_toggles ? ` [${r.dawn_toggles}]` : ''}`, `${f(r.tokens_per_s, 0)} tok/s${typeof r.mfu === 'number' ? ` MFU ${f(100 * r.mfu, 1)}%` : ''}`, `${f(r.ms_per_step, 1)} ms/step${r.sync_ms_per_step ? ` (1 at a time ${f(r.sync_ms_per_step, 1)})` : ''}${r.record_ms ? ` rec ${f(r.record_ms, 2)}` : ''}${r.dispatches_per_step ?? r.dispatches ? ` ${r.dispatches_per_step ?? r.dispatches} disp` : ''}`);
        break;
      case 'profile': {
        if (r.skipped) row('profile', `${r.preset} ${r.backend}`, 'skipped', String(r.skipped).slice(0, 60));
        else if (r.family === 'total') row('profile', `${r.preset} total`, `${f(r.ms, 3)} gpu ms`, `${r.dispatches} disp, step ${f(r.step_ms, 2)} ms`);
        else {
          // The three largest kernel families of each preset.
          const fam = rs.filter((x) => x.bench === 'profile' && x.preset === r.preset && x.backend === r.backend && x.family && x.family !== 'total');
          const top = fam.sort((a, b) => b.ms - a.ms).slice(0, 3);
          if (top.includes(r)) row('profile', `${r.preset} ${r.family}`, `${f(r.ms, 3)} gpu ms (${f(100 * r.share, 0)}%)`,
            `${r.dispatches} disp${typeof r.gflops === 'number' ? ` ${f(r.gflops, r.gflops < 10 ? 2 : 0)} GFLOP/s${typeof r.pct_peak === 'number' ? ` (${f(r.pct_peak)}% peak)` : ''}` : ''}`);
        }
        break;
      }
      case 'train_run':
        row('train', r.name, `${r.steps} steps loss ${f(r.first_loss, 3)}->${f(r.last_loss, 3)} val ${f(r.val_loss, 3)}`, `${f(r.median_tokens_per_s, 0)} tok/s`);
        break;
      case 'parity':
        row('parity', r.name ?? 'tiny cpu vs webgpu', `${r.ok ? 'OK' : 'FAIL'} max rel loss ${e(r.max_rel_loss)} (tol ${e(r.tol)})`, `${r.steps_compared}/${r.steps_cpu} steps, gn ${e(r.max_rel_grad_norm)}`);
        break;
      case 'torch_reference':
        row('torch', `${r.model?.nLayer}L ${r.model?.nEmbd}C on ${r.device}`, `${r.ok ? 'OK' : 'FAIL'} loss ${e(r.loss_rel_f32)} grad ${e(r.grad_max_rel_f32)} (f64 ${e(r.grad_max_rel_f64)})`,
          [r.loss_rel_transformers !== undefined ? `transformers ${e(r.loss_rel_transformers)}` : 'transformers skipped',
            r.loss_rel_hf_export !== undefined ? `hf folder ${e(r.loss_rel_hf_export)}` : r.hf_export?.startsWith('failed') ? 'hf folder FAILED' : ''].filter(Boolean).join(', '));
        break;
      case 'torch_train': {
        const runs = ['cpu64', 'cpu', 'webgpu'].filter((k) => r[k] && !r[k].skipped).map((k) => `${k} ${r[k].error ? 'ERROR' : e(r[k].loss_max_rel)}`);
        row('torch', `train ${r.steps} steps on ${r.device}`, `${r.ok ? 'OK' : 'FAIL'} loss vs AdamW: ${runs.join(', ')}`, `lr ${e(r.lr_max_rel)}, ${r.clipped_steps} clipped`);
        break;
      }
      case 'torch_speed':
        if (r.skipped) row('torch', 'speed', 'skipped', r.skipped);
        else if (r.error) row('torch', `speed ${r.preset}`, 'error', r.error);
        else row('torch', `speed ${r.preset} ${r.mode ?? 'eager'} ${r.precision ?? 'f32'}`, `${f(r.tokens_per_s, 0)} tok/s ${f(r.ms_per_step, 2)} ms/step`, `kiln ${r.kiln_backend} ${f(r.kiln_tokens_per_s, 0)} tok/s = ${f(100 * r.kiln_over_torch, 1)}%`);
        break;
      case 'cuda-devices':
        row('cuda', 'device', r.count ? `${r.name} (cc ${r.computeCapability})` : `none: ${r.error ?? '?'}`, `gemm: ${(r.gemm ?? []).join(', ')}`);
        break;
      case 'cuda-tests':
        row('cuda', `kernel tests ${r.label}`, `${r.failed ? 'FAIL' : 'OK'} ${r.passed} passed, ${r.failed} failed`, `${r.skipped} skipped`);
        break;
      case 'gemm':
        if (r.skipped) row('gemm', r.impl, 'skipped', r.skipped);
        else row('gemm', `${r.impl} ${r.M}^3 ${r.dtype}`, `${f(r.tflops, 1)} TFLOP/s`, `${f(r.ms, 3)} ms`);
        break;
      case 'step':
        if (r.status !== 'ok') row('step', r.name, r.status, `rc ${r.rc} ${f(r.seconds, 0)} s`);
        break;
    }
  }
  const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => (r[i] ?? '').length), 0));
  const out = rows.map((r) => r.map((c, i) => (i < 3 ? c.padEnd(Math.min(w[i], 40)) : c)).join('  ')).join('\n');
  process.stdout.write(out + '\n');
} else {
  process.stderr.write('usage: node report.mjs parity CPU GPU [TOL] [NAME] | train METRICS [NAME] | table RESULTS\n');
  process.exit(1);
}
