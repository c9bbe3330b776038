// The page's number and sentence formatting (src/ui/format.ts).
import { describe, expect, it } from 'vitest';
import { fmtDuration, fmtLoss, sentence } from '../../src/ui/format.ts';

describe('sentence: a hint shown as its own sentence', () => {
  it('capitalizes a clause and ends it with a full stop', () => {
    expect(sentence('reload the page')).toBe('Reload the page.');
    expect(sentence('  ask for a new link ')).toBe('Ask for a new link.');
  });

  it('keeps a command at the start as written, and the punctuation there is', () => {
    expect(sentence('kiln train --resume runs/tiny continues it')).toBe('kiln train --resume runs/tiny continues it.');
    expect(sentence('npx kiln serve --open')).toBe('npx kiln serve --open.');
    expect(sentence('Give a UTF-8 text file (.txt).')).toBe('Give a UTF-8 text file (.txt).');
    expect(sentence('is it done?')).toBe('Is it done?');
    expect(sentence('')).toBe('');
  });
});

describe('numbers', () => {
  it('formats losses and durations as the run bar shows them', () => {
    expect(fmtLoss(null)).toBe('–');
    expect(fmtDuration(null)).toBe('–');
  });
});
