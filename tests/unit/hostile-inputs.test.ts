// Crafted inputs (issue 19): each is refused by a bound checked before anything big is
// allocated, with a one-line KilnError whose message is safe to print. The tests assert
// the decision (code and message), not timing.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { report } from '../../src/cli/main.ts';
import { DEFAULT_CONFIG, validate, type RunConfig } from '../../src/core/config.ts';
import { KilnError } from '../../src/core/errors.ts';
import { decodeSafetensors, encodeSafetensors } from '../../src/core/safetensors.ts';
import { decodeShareLink } from '../../src/core/share-link.ts';
import { preview, printable } from '../../src/core/text.ts';
import {
  BPE_MAX_TABLE_BYTES,
  BPE_MAX_TOKEN_BYTES,
  BpeTokenizer,
  checkBpeMerges,
  tokenizerFromJSON,
  trainBpe,
  type TokenizerJSON,
} from '../../src/core/tokenizers/index.ts';

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function caught(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a KilnError, nothing was thrown');
}

async function caughtAsync(f: () => Promise<unknown>): Promise<KilnError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a KilnError, nothing was thrown');
}

function expectOneLine(e: KilnError, code: KilnError['code']): void {
  expect(e.code).toBe(code);
  expect(e.message).not.toMatch(CONTROL);
  expect(e.message.length).toBeLessThan(400);
  expect(e.hint).not.toBe('');
}

/** Merges [97,97],[256,256],[257,257],...: token 255+k is 2^k bytes of "a". */
function doubling(n: number): Array<[number, number]> {
  const merges: Array<[number, number]> = [[97, 97]];
  for (let k = 1; k < n; k++) merges.push([255 + k, 255 + k]);
  return merges;
}

/** A safetensors file from a header object written directly, and `data` bytes after it. */
function rawFile(header: string, data: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  return out;
}

describe('BPE merges are bounded before the table is built', () => {
  it.each([30, 40])('refuses %i doubling merges at the merge that passes the token cap', async (n) => {
    const json = { kind: 'bpe', merges: doubling(n) } as TokenizerJSON;
    // Token 255+k holds 2^k bytes: the first above the cap is k = log2(cap) + 1, merge k - 1.
    const k = Math.log2(BPE_MAX_TOKEN_BYTES) + 1;
    const e = caught(() => BpeTokenizer.fromJSON(json));
    expectOneLine(e, 'checkpoint');
    expect(e.message).toBe(
      `bpe merge ${k - 1} (${254 + k}, ${254 + k}) makes a token of ${2 ** k} bytes, above the ${BPE_MAX_TOKEN_BYTES}-byte limit`,
    );
    const viaJson = await caughtAsync(() => tokenizerFromJSON(json));
    expect(viaJson.message).toBe(e.message);
  });

  it('refuses a table whose tokens together pass the total cap, though each is within its own', () => {
    // A 512-byte token for each of the 256 bytes (9 doublings each), then pairs of them:
    // 1024 bytes per merge, so 65536 of them reach 64 MiB.
    const merges: Array<[number, number]> = [];
    const big: number[] = [];
    for (let b = 0; b < 256; b++) {
      let t = b;
      for (let d = 0; d < 9; d++) {
        merges.push([t, t]);
        t = 255 + merges.length;
      }
      big.push(t);
    }
    for (const x of big) for (const y of big) merges.push([x, y]);
    const e = caught(() => checkBpeMerges(merges));
    expectOneLine(e, 'checkpoint');
    expect(e.message).toMatch(new RegExp(`^bpe merge \\d+ brings the tokens to \\d+ bytes in all, above the ${BPE_MAX_TABLE_BYTES}-byte limit$`));
  });

  it('refuses a merge that names a token not defined yet, or is not a pair of ids', () => {
    const ahead = caught(() => new BpeTokenizer([[97, 97], [300, 97]]));
    expectOneLine(ahead, 'checkpoint');
    expect(ahead.message).toMatch(/^bpe merge 1 \(\[300,97\]\) must be two ids below 257/);
    const self = caught(() => new BpeTokenizer([[256, 97]]));
    expect(self.message).toMatch(/^bpe merge 0 /);
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const odd = caught(() => BpeTokenizer.fromJSON({ kind: 'bpe', merges: [deep as [number, number]] }));
    expectOneLine(odd, 'checkpoint');
  });

  it('what Kiln trains stays within the caps, even on a long run of one symbol', () => {
    const t = trainBpe(`${'='.repeat(5000)} hello world, hello again\n`.repeat(3), 1024);
    let longest = 0;
    for (let id = 0; id < t.vocabSize; id++) longest = Math.max(longest, t.tokenBytes(id).length);
    expect(longest).toBeLessThanOrEqual(BPE_MAX_TOKEN_BYTES);
    expect(checkBpeMerges(t.merges)).toBeLessThan(BPE_MAX_TABLE_BYTES);
    const again = BpeTokenizer.fromJSON(t.toJSON());
    const text = `${'='.repeat(3000)} hello`;
    expect(again.decode(again.encode(text))).toBe(text);
  });
});

describe('deeply nested values are described, never walked', () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];

  it('a config value nested 100k levels deep gives a readable message', () => {
    const config = { ...DEFAULT_CONFIG, nLayer: deep } as unknown as RunConfig;
    const issues = validate(config);
    expect(issues.map((i) => i.field)).toContain('nLayer');
    const message = issues.find((i) => i.field === 'nLayer')!.message;
    expect(message).toMatch(/^nLayer must be a number, not \[\[\[\[/);
    expect(message.length).toBeLessThan(100);
  });

  it('a tensor shape or dtype nested 100k levels deep in a checkpoint header is refused in one line', () => {
    const nest = (n: number): string => `${'['.repeat(n)}1${']'.repeat(n)}`;
    for (const header of [
      `{"w":{"dtype":"F32","shape":${nest(100_000)},"data_offsets":[0,4]}}`,
      `{"w":{"dtype":${nest(100_000)},"shape":[1],"data_offsets":[0,4]}}`,
      `{"w":{"dtype":"F32","shape":[1],"data_offsets":${nest(100_000)}}}`,
    ]) {
      const e = caught(() => decodeSafetensors(rawFile(header, 4)));
      expectOneLine(e, 'checkpoint');
      expect(e.message).toMatch(/^checkpoint tensor "w" has (a bad shape|unknown dtype|bad data_offsets) \[\[\[/);
    }
  });

  it('preview() stops after a few levels and a few dozen characters', () => {
    expect(preview([128])).toBe('[128]');
    expect(preview({ a: 1 })).toBe('{"a":1}');
    expect(preview(deep)).toBe('[[[[[…]]]]]');
    expect(preview(new Array(1_000_000).fill(7)).length).toBeLessThan(60);
  });
});

describe('a header with 200k tensors', () => {
  it('is checked with loops, not a spread of 200k arguments', () => {
    const n = 200_000;
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[1],"data_offsets":[${4 * i},${4 * i + 4}]}`);
    const header = `{${parts.join(',')}}`;
    // One tensor's bytes short: refused as truncated, after the layout check ran over all of them.
    const e = caught(() => decodeSafetensors(rawFile(header, 4 * n - 4)));
    expectOneLine(e, 'checkpoint');
    expect(e.message).toMatch(/^checkpoint is truncated: its header says 800\.0 kB of tensors/);
    // The whole data is there: it reads.
    expect(decodeSafetensors(rawFile(header, 4 * n)).tensors.size).toBe(n);
  });
});

describe('terminal safety', () => {
  const osc = '\x1b]0;pwned\x07';

  afterEach(() => {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  });

  function stderrOf(e: unknown): { code: number; text: string } {
    let text = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => ((text += String(chunk)), true));
    const code = report(e);
    vi.restoreAllMocks();
    // A terminal gets Kiln's own "clear the line" first; that is the only escape allowed.
    return { code, text: text.replace(/^\r\x1b\[2K/, '') };
  }

  it('printable() escapes C0, DEL and C1 controls and cuts long text', () => {
    expect(printable(`a${osc}b`)).toBe('a\\x1b]0;pwned\\x07b');
    expect(printable('x\x7f\x9b\u202ey\n')).toBe('x\\x7f\\x9b\\u{202e}y\\x0a');
    expect(printable('héllo wörld 😀')).toBe('héllo wörld 😀');
    expect(printable('z'.repeat(1000), 10)).toBe(`${'z'.repeat(10)}…`);
  });

  it('a tensor name with an OSC sequence reaches the overlap message escaped', () => {
    const header = `{"a${'\\u001b]0;pwned\\u0007'}":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b\\u009b2J":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`;
    const e = caught(() => decodeSafetensors(rawFile(header, 4)));
    expectOneLine(e, 'checkpoint');
    expect(e.message).toMatch(/overlap$/);
  });

  it('an error message with an OSC sequence prints no ESC or BEL byte', () => {
    for (const e of [new KilnError('data', `dataset ${osc} is missing`, `hint ${osc}`), new Error(`boom ${osc}`)]) {
      const { text } = stderrOf(e);
      expect(text).not.toContain('\x1b');
      expect(text).not.toContain('\x07');
      expect(text).toContain('\\x1b]0;pwned\\x07');
    }
  });

  it('a plain Error prints its name and message, and its stack only with KILN_DEBUG=1', () => {
    const err = new TypeError('EISDIR: illegal operation on a directory');
    vi.stubEnv('KILN_DEBUG', '');
    const quiet = stderrOf(err);
    expect(quiet.code).toBe(1);
    expect(quiet.text.split('\n')[0]).toBe('kiln: internal error: TypeError: EISDIR: illegal operation on a directory');
    expect(quiet.text).toMatch(/\n {2}hint: this is a bug in Kiln/);
    expect(quiet.text).not.toMatch(/\n\s+at /);
    vi.stubEnv('KILN_DEBUG', '1');
    const loud = stderrOf(err);
    expect(loud.text).toMatch(/\n\s+at /);
    expect(loud.text).not.toContain('\x1b');
  });

  it('config and link values with control characters are quoted escaped', () => {
    const config = { ...DEFAULT_CONFIG, tokenizer: `x${osc}` } as unknown as RunConfig;
    const message = validate(config).find((i) => i.field === 'tokenizer')!.message;
    expect(message).not.toMatch(CONTROL);
    expect(message).toContain('pwned');
    for (const link of ['v=1&preset=tiny&x%1B%5D0%3Bpwned%07=1', 'v=1&preset=tiny&lr=%1B%5D0%3Bpwned%07', 'v=1&preset=x%C2%9B2J', 'v=1&a%1B=1&a%1B=2']) {
      const e = caught(() => decodeShareLink(link));
      expect(e.message).not.toMatch(CONTROL);
      expect(e.hint).not.toMatch(CONTROL);
    }
  });
});

describe('a well-formed file still round-trips', () => {
  it('encodes and decodes', () => {
    const bytes = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }], { k: 'v' });
    expect([...decodeSafetensors(bytes).tensors.get('w')!.data]).toEqual([1, 2]);
  });
});
