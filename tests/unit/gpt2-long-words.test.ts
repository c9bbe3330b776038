// GPT-2's tokenizer on text with very long runs without a space (a pasted hash, a
// minified file, a crafted input): the package's BPE is quadratic in a pre-token's
// length, so Kiln hands it runs of at most MAX_GPT2_RUN characters. Ordinary text is
// untouched; a long run round-trips.
import { describe, expect, it } from 'vitest';
import { encodeBounded, loadGpt2Tokenizer, MAX_GPT2_RUN } from '../../src/core/tokenizers/gpt2.ts';

describe('GPT-2 tokenizer on long runs', () => {
  it('passes ordinary text through whole and cuts only runs longer than the bound', () => {
    const calls: string[] = [];
    const spy = (t: string) => (calls.push(t), [t.length]);
    expect(encodeBounded('Hello world, this is text.', spy)).toEqual([26]);
    expect(calls).toEqual(['Hello world, this is text.']);

    calls.length = 0;
    const long = 'a'.repeat(3 * MAX_GPT2_RUN + 5);
    encodeBounded(`say ${long}\nend`, spy);
    expect(calls).toEqual(['say', ` ${'a'.repeat(MAX_GPT2_RUN - 1)}`, 'a'.repeat(MAX_GPT2_RUN), 'a'.repeat(MAX_GPT2_RUN), 'a'.repeat(6), '\nend']);
    expect(Math.max(...calls.map((c) => c.length))).toBeLessThanOrEqual(MAX_GPT2_RUN);
    // Code points, not UTF-16 units: an emoji is never cut in half.
    calls.length = 0;
    encodeBounded('😀'.repeat(MAX_GPT2_RUN + 1), spy);
    expect(calls.map((c) => [...c].length)).toEqual([MAX_GPT2_RUN, 1]);
  });

  it('encodes 160k letters without a space in pieces, and decodes them back', async () => {
    const tok = await loadGpt2Tokenizer();
    const text = `start ${'ab'.repeat(80_000)} end`;
    const ids = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    // Ordinary text is GPT-2's own tokenization.
    expect(Array.from(tok.encode('Hello world'))).toEqual([15496, 995]);
  });
});
