// The tied LM head with a fused softmax + cross-entropy (shaders/crossentropy.wgsl and
// the general `matmul`), chunked over rows as llm.c's fused classifier so the (N,V)
// logits never exist at once: for each chunk of rows
//   logits = x_chunk @ wte^T             (matmul, transB)
//   loss per row; logits <- dlogits      (classifier_softmax, in place)
//   dx_chunk += dlogits @ wte            (matmul, accumulate)
//   dwte += dlogits^T @ x_chunk          (matmul, transA, accumulate; chunks in order)
//
// Chunks start at multiples of 64 rows, so every per-row tensor of a chunk (x, dx,
// losses, targets) starts at a multiple of 256 bytes and can be bound as a slice.
import type { Bind, Dispatch, PipelineCache } from '../kernel.ts';
import { grid1d, rowInvocations } from './grid.ts';
import { matmul } from './matmul.ts';
import { slice, type InputGradOptions } from './util.ts';

const SHADER = 'crossentropy';
const WG = 256;
/** Chunks of more than one start at multiples of this many rows (256-byte binding offsets for f32 rows). */
export const CLASSIFIER_ROW_ALIGN = 64;

/** Rows per chunk: all N if their logits fit one binding, else the most multiples of 64 rows that do. */
export function classifierRowsPerChunk(N: number, V: number, maxBindingBytes: number): number {
  if (N * V * 4 <= maxBindingBytes) return N;
  const rows = Math.floor(maxBindingBytes / (V * 4) / CLASSIFIER_ROW_ALIGN) * CLASSIFIER_ROW_ALIGN;
  if (rows < CLASSIFIER_ROW_ALIGN) {
    throw new Error(`classifier: ${CLASSIFIER_ROW_ALIGN} rows of ${V} logits need ${CLASSIFIER_ROW_ALIGN * V * 4} bytes, more than one binding holds (${maxBindingBytes})`);
  }
  return rows;
}

/** Bytes of the logits scratch: one chunk of classifierRowsPerChunk(N, V, maxBindingBytes) rows, reusable by anything outside the call. */
export function classifierScratch(N: number, V: number, maxBindingBytes: number): Record<'logits', number> {
  return { logits: classifierRowsPerChunk(N, V, maxBindingBytes) * V * 4 };
}

function chunks(N: number, rowsPerChunk: number): Array<[number, number]> {
  if (!(rowsPerChunk >= N || (rowsPerChunk > 0 && rowsPerChunk % CLASSIFIER_ROW_ALIGN === 0))) {
    throw new Error(`classifier: rowsPerChunk ${rowsPerChunk} must be >= N (${N}) or a multiple of ${CLASSIFIER_ROW_ALIGN}`);
  }
  const out: Array<[number, number]> = [];
  for (let r0 = 0; r0 < N; r0 += rowsPerChunk) out.push([r0, Math.min(rowsPerChunk, N - r0)]);
  return out;
}

/** Invocations per row of the softmax: about 4 logits each, 32 to 256 (rowInvocations). */
export function softmaxWorkgroup(V: number): number {
  return rowInvocations(V, 4, WG);
}

function softmaxDispatch(k: PipelineCache, logits: Bind, losses: Bind, targets: Bind, R: number, V: number, grad: boolean, scale: number): Dispatch {
  const constants = { R, V, WG: softmaxWorkgroup(V), GRAD: +grad, SCALE: scale };
  return k.dispatch('classifier_softmax', { shader: SHADER, entry: 'classifier_softmax', constants }, [logits, losses, targets], grid1d(R, 1));
}

function chunkLogits(k: PipelineCache, logits: Bind, x: Bind, wte: Bind, r0: number, R: number, C: number, V: number): Dispatch[] {
  return matmul(k, logits, slice(x, r0 * C * 4, R * C * 4), wte, null, { M: R, N: V, K: C, transB: true });
}

// losses is (N); dx and x are (N,C); dwte and wte are (V,C); targets is (N) token ids
// (i32/u32); logitsScratch holds rowsPerChunk*V floats (classifierScratch). scale is
// d(total loss)/d(losses[n]) (1/(B*T*microBatches) for the mean). Writes losses;
// accumulates (+=) dx += dlogits @ wte and dwte += dlogits^T @ x, where
// dlogits = (softmax(x @ wte^T) - onehot(targets)) * scale. With accumulate: false,
// dx = dlogits @ wte (dwte still accumulates).
export function classifierForwardBackward(
  k: PipelineCache, losses: Bind, dx: Bind, dwte: Bind, x: Bind, wte: Bind, targets: Bind, logitsScratch: Bind,
  N: number, C: number, V: number, scale: number, rowsPerChunk: number, o: InputGradOptions = {},
): Dispatch[] {
  const out: Dispatch[] = [];
  for (const [r0, R] of chunks(N, rowsPerChunk)) {
    const logits = slice(logitsScratch, 0, R * V * 4);
    const xc = slice(x, r0 * C * 4, R * C * 4);
    out.push(...chunkLogits(k, logits, x, wte, r0, R, C, V));
    out.push(softmaxDispatch(k, logits, slice(losses, r0 * 4, R * 4), slice(targets, r0 * 4, R * 4), R, V, true, scale));
    out.push(...matmul(k, slice(dx, r0 * C * 4, R * C * 4), logits, wte, null, { M: R, N: C, K: V, accumulate: o.accumulate ?? true }));
    out.push(...matmul(k, dwte, logits, xc, null, { M: V, N: C, K: R, transA: true, accumulate: true }));
  }
  return out;
}

// As classifierForwardBackward without gradients (evaluation): writes losses (N) only.
export function classifierLoss(
  k: PipelineCache, losses: Bind, x: Bind, wte: Bind, targets: Bind, logitsScratch: Bind,
  N: number, C: number, V: number, rowsPerChunk: number,
): Dispatch[] {
  const out: Dispatch[] = [];
  for (const [r0, R] of chunks(N, rowsPerChunk)) {
    const logits = slice(logitsScratch, 0, R * V * 4);
    out.push(...chunkLogits(k, logits, x, wte, r0, R, C, V));
    out.push(softmaxDispatch(k, logits, slice(losses, r0 * 4, R * 4), slice(targets, r0 * 4, R * 4), R, V, false, 1));
  }
  return out;
}

// out is (V); x is (rows,C); wte is (V,C); row is a buffer holding one u32, the row of x
// (written with queue.writeBuffer, so sampling at a new position needs no new pipeline).
// out = x[row] @ wte^T: the logits for sampling.
export function lastLogits(k: PipelineCache, out: Bind, x: Bind, wte: Bind, row: Bind, C: number, V: number): Dispatch[] {
  const constants = { C, V, WG };
  return [k.dispatch('classifier_row_logits', { shader: SHADER, entry: 'classifier_row_logits', constants }, [out, x, wte, row], grid1d(V, WG))];
}

// out is (1); losses is (N). out[0] = (accumulate ? out[0] : 0) + scale * sum(losses), in a
// fixed order. With scale = 1/(N*microBatches) and accumulate on every micro-batch but the
// first, out holds the step's mean loss: one float to read back.
export function meanLoss(k: PipelineCache, out: Bind, losses: Bind, N: number, scale: number, accumulate: boolean): Dispatch[] {
  const constants = { R: N, WG, SCALE: scale, ACCUMULATE: +accumulate };
  return [k.dispatch('mean_loss', { shader: SHADER, entry: 'mean_loss', constants }, [out, losses], [1])];
}
