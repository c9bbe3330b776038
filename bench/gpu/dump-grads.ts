// Kiln's CPU reference gradients for one batch, for bench/gpu/torch_reference.py (the
// independent check DESIGN.md asks for: the same GPT-2 built in PyTorch from the same
// parameters must give the same loss and gradients).
//
//   npx tsx bench/gpu/dump-grads.ts --out DIR [--checkpoint FILE] [--preset tiny] [--vocab 65] [--batch 4] [--seed 1]
//   node .tools/dump-grads.mjs ...            (the bundle scripts/pack-device.sh builds)
//
// Parameters come from a Kiln checkpoint (--checkpoint, verified as `kiln` loads it)
// or, without one, from GPT-2's initialisation of --preset with --vocab rows. The
// batch is B sequences of blockSize random token ids (seeded). Writes into DIR:
//   params.safetensors  the parameters (F32, Hugging Face GPT-2 names, Conv1D [in,out]),
//                       metadata kiln.model = the model shape as JSON
//   grads.safetensors   d(mean loss)/d(param) from the f32 reference under the same
//                       names, and from the f64 reference under "f64.<name>" (stored F32)
//   batch.json          {B, T, inputs, targets, loss_f32, loss_f64, model}
// and prints one JSON line.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeCheckpoint } from '../../src/core/checkpoint.ts';
import { modelSpec, paramViews, resolveModel, type ModelConfig } from '../../src/core/model-spec.ts';
import { findPreset } from '../../src/core/presets.ts';
import { Rng } from '../../src/core/rng.ts';
import { encodeSafetensors, type TensorIn } from '../../src/core/safetensors.ts';
import { ReferenceGPT } from '../../src/reference/gpt.ts';
import { initialState } from '../../src/train/prepare.ts';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const out = flag('out');
  if (!out) throw new Error('usage: dump-grads --out DIR [--checkpoint FILE] [--preset tiny] [--vocab 65] [--batch 4] [--seed 1]');
  const seed = Number(flag('seed') ?? 1);
  const B = Number(flag('batch') ?? 4);
  let model: ModelConfig;
  let params: Float32Array;
  let source: string;
  const ckpt = flag('checkpoint');
  if (ckpt) {
    const bytes = readFileSync(ckpt);
    const c = await decodeCheckpoint(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length));
    model = c.model;
    params = c.state.params;
    source = `checkpoint ${ckpt} (step ${c.step})`;
  } else {
    const presetName = flag('preset') ?? 'tiny';
    const preset = findPreset(presetName);
    if (!preset) throw new Error(`unknown preset ${presetName}`);
    model = resolveModel(preset.config, Number(flag('vocab') ?? 65));
    params = initialState(model, seed).params;
    source = `init of preset ${presetName} (seed ${seed})`;
  }
  const T = model.blockSize;
  const rng = Rng.derive(seed, 'dump-grads');
  const inputs = new Int32Array(B * T).map(() => rng.int(model.vocabSize));
  const targets = new Int32Array(B * T).map(() => rng.int(model.vocabSize));

  const spec = modelSpec(model);
  const run = (dtype: 'f32' | 'f64') => {
    const gpt = new ReferenceGPT(model, params, { maxBatch: B, dtype });
    gpt.zeroGrad();
    const loss = gpt.forward(inputs, targets, B, T);
    gpt.backward(1);
    return { loss, grads: Float32Array.from(gpt.grads) };
  };
  const r32 = run('f32');
  const r64 = run('f64');

  mkdirSync(out, { recursive: true });
  const meta = { 'kiln.model': JSON.stringify(model) };
  const tensors = (flat: Float32Array, prefix = ''): TensorIn[] => {
    const views = paramViews(spec, flat);
    return spec.params.map((p) => ({ name: prefix + p.name, dtype: 'F32', shape: p.shape, data: views.get(p.name)! }));
  };
  writeFileSync(join(out, 'params.safetensors'), encodeSafetensors(tensors(params), meta));
  writeFileSync(join(out, 'grads.safetensors'), encodeSafetensors([...tensors(r32.grads), ...tensors(r64.grads, 'f64.')], meta));
  writeFileSync(join(out, 'batch.json'), JSON.stringify({
    B, T, inputs: [...inputs], targets: [...targets], loss_f32: r32.loss, loss_f64: r64.loss, model, source,
  }) + '\n');
  process.stdout.write(JSON.stringify({ bench: 'dump-grads', source, model, B, T, params: spec.numParams, loss_f32: r32.loss, loss_f64: r64.loss, out }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`dump-grads: ${(e as Error)?.stack ?? e}\n`);
  process.exit(1);
});
