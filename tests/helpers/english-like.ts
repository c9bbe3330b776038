// English-like text from a seeded generator, for tokenizer tests and benchmarks: common
// words plus made-up ones from syllables, drawn with Zipf frequencies (so BPE meets a
// realistic number of distinct words), with punctuation and line breaks.
export function englishLike(bytes: number, seed = 1): string {
  let s = seed >>> 0;
  const rand = (): number => {
    s = (s + 0x6d2b79f5) >>> 0; // mulberry32
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const words = (
    'the of and to a in that is was he for it with as his on be at by i this had not are but from or ' +
    'have an they which one you were her all she there would their we him been has when who will more'
  ).split(' ');
  const onsets = ['b', 'c', 'd', 'f', 'g', 'h', 'l', 'm', 'n', 'p', 'r', 's', 't', 'w', 'st', 'th', 'ch', 'br', 'pl', ''];
  const vowels = ['a', 'e', 'i', 'o', 'u', 'ea', 'ou', 'ai'];
  const codas = ['', '', 'n', 'r', 's', 't', 'll', 'nd', 'ng', 'ck'];
  while (words.length < 8000) {
    let w = '';
    for (let k = 1 + Math.floor(rand() * 3); k > 0; k--) w += pick(onsets) + pick(vowels) + pick(codas);
    words.push(w);
  }
  const parts: string[] = [];
  let len = 0;
  let start = true;
  while (len < bytes) {
    let w = words[Math.floor(Math.exp(rand() * Math.log(words.length + 1))) - 1]; // P(i) ~ 1/(i+1)
    if (start) w = w[0].toUpperCase() + w.slice(1);
    const r = rand();
    const sep = r < 0.06 ? '.\n' : r < 0.1 ? '. ' : r < 0.16 ? ', ' : r < 0.17 ? '; ' : ' ';
    start = sep.startsWith('.');
    parts.push(w + sep);
    len += w.length + sep.length;
  }
  return parts.join('');
}
