// Token ids split into train and validation, a seeded sampler of training batches
// whose state a checkpoint stores (so a resumed run sees the same batches), and the
// fixed validation batches every evaluation uses (so eval numbers are comparable
// across steps, runs and the `kiln eval` command).
import { KilnError } from './errors.ts';
import { Rng, type RngState } from './rng.ts';

/** Token ids for `microBatches` micro-batches of B sequences of T tokens, back to back. */
export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  B: number;
  T: number;
  microBatches: number;
}

export interface Split {
  train: Int32Array;
  val: Int32Array;
}

/** Tokens kept for validation: `valFraction` of them, but at least a block plus one. */
function valTokens(n: number, valFraction: number, blockSize: number): number {
  return Math.max(blockSize + 1, Math.floor(n * valFraction));
}

/** The shortest validation piece, in windows of a block plus one: few seams inside it. */
const PIECE_WINDOWS = 16;

/**
 * Train and validation tokens. The validation share is cut into k equal pieces, one at
 * the end of each of k equal segments of the text, so it samples the whole file: a
 * held-out tail (nanoGPT's split) is a different distribution whenever the file is
 * ordered, as sorted word lists like names.txt are (there the tail is only names from
 * 's' on). Pieces are contiguous runs of at least PIECE_WINDOWS blocks, so windows
 * rarely cross a seam; short data gets one piece: exactly the tail split. Both parts
 * must hold a block plus one.
 */
export function splitTokens(tokens: Int32Array, valFraction: number, blockSize: number): Split {
  const n = tokens.length;
  const need = blockSize + 1;
  const nValWanted = valTokens(n, valFraction, blockSize);
  if (n - nValWanted < need) {
    // The largest context this text can feed (2 is the smallest blockSize a config takes).
    let fits = blockSize - 1;
    while (fits >= 2 && n - valTokens(n, valFraction, fits) < fits + 1) fits--;
    throw new KilnError(
      'data',
      `the data is too short: ${n} tokens, but a block of ${blockSize} needs at least ${2 * need} (${need} for training and ${need} for validation)`,
      fits >= 2 ? `give more text, or lower blockSize to ${fits} or less` : 'give more text (a few lines at the least)',
    );
  }
  const k = Math.max(1, Math.floor(nValWanted / (PIECE_WINDOWS * need)));
  const piece = Math.floor(nValWanted / k);
  if (k === 1) return { train: tokens.subarray(0, n - piece), val: tokens.subarray(n - piece) };
  const train = new Int32Array(n - k * piece);
  const val = new Int32Array(k * piece);
  let t = 0;
  for (let j = 0; j < k; j++) {
    const a = Math.floor((j * n) / k);
    const b = Math.floor(((j + 1) * n) / k);
    train.set(tokens.subarray(a, b - piece), t);
    t += b - piece - a;
    val.set(tokens.subarray(b - piece, b), j * piece);
  }
  return { train, val };
}

/** Random windows of the training tokens (nanoGPT's get_batch), from a stream that can be saved and restored. */
export class BatchSampler {
  private rng: Rng;

  constructor(
    private readonly tokens: Int32Array,
    seedOrState: number | RngState,
  ) {
    this.rng = typeof seedOrState === 'number' ? Rng.derive(seedOrState, 'data') : new Rng(seedOrState);
  }

  next(B: number, T: number, microBatches: number): Batch {
    const n = B * T * microBatches;
    const inputs = new Int32Array(n);
    const targets = new Int32Array(n);
    const maxStart = this.tokens.length - T - 1;
    for (let s = 0; s < B * microBatches; s++) {
      const start = this.rng.int(maxStart + 1);
      inputs.set(this.tokens.subarray(start, start + T), s * T);
      targets.set(this.tokens.subarray(start + 1, start + T + 1), s * T);
    }
    return { inputs, targets, B, T, microBatches };
  }

  state(): RngState {
    return this.rng.state();
  }
}

/**
 * The validation set as `count` batches of B non-overlapping windows, spread evenly
 * over the whole split (a long split is not judged by its first pieces only), or all
 * of its windows in order, wrapping around, when it holds fewer than B. The same
 * batches every time: evaluation never consumes randomness.
 */
export function valBatches(val: Int32Array, B: number, T: number, count: number): Batch[] {
  const windows = Math.max(1, Math.floor((val.length - 1) / T));
  const total = Math.min(count * B, Math.max(B, windows));
  // The last batch wraps around to the first windows when `total` is not a multiple of B.
  const windowAt = (i: number) => (total <= windows ? Math.floor(((i % total) * windows) / total) : i % windows);
  const batches: Batch[] = [];
  for (let w0 = 0; w0 < total; w0 += B) {
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = windowAt(w0 + b) * T;
      inputs.set(val.subarray(start, start + T), b * T);
      targets.set(val.subarray(start + 1, start + T + 1), b * T);
    }
    batches.push({ inputs, targets, B, T, microBatches: 1 });
  }
  return batches;
}
