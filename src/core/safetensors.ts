// The safetensors file format (huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON header, then the tensor bytes. The header maps
// each tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets into the
// data section) and may hold `__metadata__`, a map of strings to strings.
//
// Kiln writes f32 only; it reads f32, f16 and bf16 (converting to f32), because
// Hugging Face files often store half precision. A file is untrusted input: every
// length and offset is checked before it is used, and every failure is a
// KilnError('checkpoint') with a one-line message naming what is wrong.
import { KilnError } from './errors.ts';
import { preview, printable } from './text.ts';

export type Dtype = 'F32' | 'F16' | 'BF16';

export interface TensorIn {
  name: string;
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

export interface TensorOut {
  /** The dtype stored in the file; `data` is always f32. */
  dtype: Dtype;
  shape: number[];
  data: Float32Array;
  /** [begin, end) of its bytes in the data section, as the header says. */
  offsets: [number, number];
}

export interface Safetensors {
  tensors: Map<string, TensorOut>;
  metadata: Record<string, string>;
}

export interface DecodeOptions {
  /**
   * Tensors to check but not convert (e.g. HF's `attn.bias` mask buffers). Their
   * offsets and sizes are still validated; any known dtype is accepted for them.
   */
  skip?: (name: string) => boolean;
}

/** The reference implementation refuses headers above 100 MB (MAX_HEADER_SIZE); so do we. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines, so skipped tensors can be size-checked. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

const READABLE: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16']);

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(message: string, hint = 'the file is damaged or not a safetensors file: save or download it again'): never {
  throw new KilnError('checkpoint', message, hint);
}

/** Sizes for messages: "12 MB", "3.1 kB", "17 bytes". */
function size(n: number): string {
  if (n < 1000) return `${n} bytes`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/** A tensor or metadata name from the file, quoted for a message: escaped and cut short. */
function quoteName(name: string): string {
  return printable(JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name), 400);
}

function elementCount(shape: number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Serialises tensors (in the given order) and string metadata. The header is padded
 * with spaces to a multiple of 8 bytes, as the reference writer does, so every
 * tensor starts 8-byte aligned in the file.
 */
export function encodeSafetensors(tensors: TensorIn[], metadata: Record<string, string>): Uint8Array {
  const header = encodeHeader(tensors, metadata);
  let total = 0;
  for (const t of tensors) {
    if (t.dtype !== 'F32') throw new Error(`safetensors: can only write F32, not ${t.dtype}`);
    if (elementCount(t.shape) !== t.data.length)
      throw new Error(`safetensors: ${t.name} has ${t.data.length} values but shape [${t.shape}]`);
    total += t.data.byteLength;
  }
  const out = new Uint8Array(header.length + total);
  out.set(header, 0);
  let at = header.length;
  for (const t of tensors) {
    writeF32(out, at, t.data);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * The 8-byte length and the space-padded JSON header for tensors laid out back to
 * back in the given order. Its length depends only on the names, shapes and the
 * metadata's text, so a writer can patch fixed-length metadata (a hash) in place.
 */
export function encodeHeader(
  tensors: Array<{ name: string; dtype: string; shape: number[]; data: { byteLength: number } }>,
  metadata: Record<string, string>,
): Uint8Array {
  // No prototype, so that a tensor named "__proto__" or "constructor" is just a key.
  const header: Record<string, unknown> = Object.create(null);
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw new Error(`safetensors: bad or duplicate tensor name "${t.name}"`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded);
  const view = new DataView(out.buffer);
  view.setUint32(0, padded % 2 ** 32, true);
  view.setUint32(4, Math.floor(padded / 2 ** 32), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return out;
}

function writeF32(out: Uint8Array, at: number, data: Float32Array): void {
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
  } else {
    const view = new DataView(out.buffer, out.byteOffset);
    for (let i = 0; i < data.length; i++) view.setFloat32(at + 4 * i, data[i], true);
  }
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * What a file that is no safetensors file most likely is, from its first bytes: the formats
 * people pick by mistake (PyTorch's own checkpoints, archives, images), with what to do.
 */
export function otherFormat(bytes: Uint8Array): { what: string; hint: string } | null {
  const at = (i: number) => bytes[i] ?? -1;
  const starts = (...b: number[]) => b.every((x, i) => at(i) === x);
  const torch = 'a PyTorch checkpoint: load it in Python and save it with safetensors (model.save_pretrained(dir) '
    + 'for a Hugging Face model, then kiln import --hf dir), or open a .safetensors file';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return { what: 'a zip archive (PyTorch saves .pt/.bin checkpoints as zip files)', hint: `if it is ${torch}; if it is a zip, unpack it first` };
  if (at(0) === 0x80 && at(1) >= 2 && at(1) <= 5) return { what: 'a Python pickle (an older PyTorch .pt/.bin checkpoint)', hint: `it is ${torch}` };
  if (starts(0x89, 0x50, 0x4e, 0x47)) return { what: 'a PNG image', hint: 'choose the .safetensors file Kiln saved (Download in the run list, or kiln train --out)' };
  if (starts(0xff, 0xd8, 0xff)) return { what: 'a JPEG image', hint: 'choose the .safetensors file Kiln saved (Download in the run list, or kiln train --out)' };
  if (starts(0x1f, 0x8b)) return { what: 'a gzip file', hint: 'unpack it first (gunzip), then open the .safetensors file inside' };
  return null;
}

/** Where the data section starts and the parsed header, after checking the outer framing. */
export function readHeader(bytes: Uint8Array): { dataStart: number; header: Record<string, unknown> } {
  if (bytes.length < 8) fail(`checkpoint is too short: ${bytes.length} bytes, not even the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  // Framing that no safetensors file has: say what the file looks like instead, when its
  // first bytes tell (only then: a real header's length can start like a pickle).
  const notSafetensors: (why: string) => never = (why) => {
    const other = otherFormat(bytes);
    return other ? fail(`this is not a safetensors checkpoint: it looks like ${other.what}`, other.hint) : fail(why);
  };
  if (n > MAX_HEADER_BYTES)
    notSafetensors(`this is not a safetensors checkpoint: its first 8 bytes claim a header of ${size(n)}, above the ${size(MAX_HEADER_BYTES)} limit`);
  if (n < 2) notSafetensors(`checkpoint header is ${n} bytes long: too short to hold any JSON`);
  if (8 + n > bytes.length)
    notSafetensors(`checkpoint is truncated: its header says ${size(n)} of JSON but the file has only ${size(bytes.length - 8)} after the length`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    notSafetensors('checkpoint header is not valid UTF-8');
  }
  if (text[0] !== '{') notSafetensors('checkpoint header does not start with "{": this is not a safetensors file');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    fail(`checkpoint header is not valid JSON (${printable((e as Error).message, 80)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('checkpoint header is not a JSON object');
  return { dataStart: 8 + n, header: header as Record<string, unknown> };
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function parseEntries(header: Record<string, unknown>): { entries: Entry[]; metadata: Record<string, string> } {
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    const shown = quoteName(name);
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('checkpoint __metadata__ is not a JSON object');
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') fail(`checkpoint metadata ${quoteName(k)} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null) fail(`checkpoint tensor ${shown} has no description`);
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES))
      fail(`checkpoint tensor ${shown} has unknown dtype ${preview(dtype, 40)}`);
    if (!Array.isArray(shape) || shape.length > 16 || !shape.every(isIndex))
      fail(`checkpoint tensor ${shown} has a bad shape ${preview(shape, 60)}`);
    if (!Array.isArray(offs) || offs.length !== 2 || !isIndex(offs[0]) || !isIndex(offs[1]) || offs[1] < offs[0])
      fail(`checkpoint tensor ${shown} has bad data_offsets ${preview(offs, 60)}`);
    const want = elementCount(shape) * DTYPE_BYTES[dtype];
    if (!Number.isSafeInteger(want) || want !== offs[1] - offs[0])
      fail(`checkpoint tensor ${shown} is ${offs[1] - offs[0]} bytes but its shape [${shape}] of ${dtype} needs ${want}`);
    entries.push({ name, dtype, shape: shape as number[], begin: offs[0], end: offs[1] });
  }
  return { entries, metadata };
}

/**
 * Checks that the tensors tile the data section exactly: no overlap, no gap, nothing
 * past the end and nothing after the last tensor (the reference reader's rule, which
 * also makes a truncated or padded file fail here rather than later).
 */
function checkLayout(entries: Entry[], dataBytes: number): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  // A loop, not Math.max(...ends): spreading 200k arguments overflows the stack.
  let total = 0;
  for (const e of sorted) if (e.end > total) total = e.end;
  if (total > dataBytes)
    fail(`checkpoint is truncated: its header says ${size(total)} of tensors but the file has ${size(dataBytes)} after the header`);
  let at = 0;
  let prev: Entry | null = null;
  for (const e of sorted) {
    if (e.begin < at) fail(`checkpoint tensors ${quoteName(prev!.name)} and ${quoteName(e.name)} overlap`);
    if (e.begin > at) fail(`checkpoint has ${e.begin - at} unused bytes before tensor ${quoteName(e.name)}`);
    at = e.end;
    prev = e;
  }
  if (at < dataBytes) fail(`checkpoint has ${size(dataBytes - at)} of unexpected data after its last tensor`);
}

function toF32(src: Uint8Array, dtype: string): Float32Array {
  const n = src.length / DTYPE_BYTES[dtype];
  if (dtype === 'F32') {
    // slice() copies into a fresh, aligned buffer (the file's offsets need not be 4-aligned).
    if (LITTLE_ENDIAN_HOST) return new Float32Array(src.slice().buffer);
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
    return out;
  }
  const out = new Float32Array(n);
  const u32 = new Uint32Array(out.buffer);
  for (let i = 0; i < n; i++) {
    const h = src[2 * i] | (src[2 * i + 1] << 8);
    u32[i] = dtype === 'BF16' ? h << 16 : f16Bits(h);
  }
  return out;
}

/** IEEE half -> single bits, exact (subnormals normalised, Inf/NaN kept). */
function f16Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** Parses and validates a safetensors file; tensors come back as f32 copies. */
export function decodeSafetensors(bytes: Uint8Array, options: DecodeOptions = {}): Safetensors {
  const { dataStart, header } = readHeader(bytes);
  const { entries, metadata } = parseEntries(header);
  checkLayout(entries, bytes.length - dataStart);
  const tensors = new Map<string, TensorOut>();
  for (const e of entries) {
    if (options.skip?.(e.name)) continue;
    if (!READABLE.has(e.dtype))
      fail(`checkpoint tensor ${quoteName(e.name)} is ${e.dtype}; Kiln reads F32, F16 and BF16`, 'convert the file to float32 or float16 first');
    const src = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    const dtype = e.dtype;
    // Converted on first use: a reader that refuses the file on its names or shapes (a crafted
    // file of 200k tiny tensors) does so before copying any data.
    tensors.set(e.name, {
      dtype: dtype as Dtype, shape: e.shape, offsets: [e.begin, e.end],
      get data(): Float32Array {
        const data = toF32(src, dtype);
        Object.defineProperty(this, 'data', { value: data, enumerable: true });
        return data;
      },
    });
  }
  return { tensors, metadata };
}

/** The data section (the bytes after the header) of a file that readHeader accepted. */
export function dataSection(bytes: Uint8Array): Uint8Array {
  return bytes.subarray(readHeader(bytes).dataStart);
}
