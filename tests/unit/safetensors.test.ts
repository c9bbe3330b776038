import { describe, expect, it } from 'vitest';
import { KilnError } from '../../src/core/errors.ts';
import { decodeSafetensors, encodeSafetensors, otherFormat, type TensorIn } from '../../src/core/safetensors.ts';
import { expectKilnError } from '../helpers/kiln-error.ts';

/** Bit patterns, so that -0, NaN payloads and subnormals must survive exactly. */
function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
}

function sample(): TensorIn[] {
  const weird = new Float32Array([0, -0, 1.5, -2.25, Infinity, -Infinity, NaN, 1e-45, 3.4028234663852886e38]);
  new Uint32Array(weird.buffer)[6] = 0x7fc01234; // a NaN with a payload
  return [
    { name: 'a.weight', dtype: 'F32', shape: [3, 3], data: weird },
    { name: 'b', dtype: 'F32', shape: [5], data: new Float32Array([1, 2, 3, 4, 5]) },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  ];
}

/** A file from a header object and raw data bytes, written independently of the encoder. */
function rawFile(header: unknown, data: Uint8Array, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectCheckpointError(f: () => unknown, match: RegExp): KilnError {
  return expectKilnError(f, 'checkpoint', match);
}

describe('encodeSafetensors', () => {
  it('writes a file an independent parser reads: u64 length, padded JSON, contiguous offsets', () => {
    const tensors = sample();
    const bytes = encodeSafetensors(tensors, { hello: 'world', 'kiln.x': '{"a":1}' });
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const n = Number(view.getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(text);
    expect(header.__metadata__).toEqual({ hello: 'world', 'kiln.x': '{"a":1}' });
    const data = bytes.subarray(8 + n);
    let end = 0;
    for (const t of tensors) {
      const h = header[t.name];
      expect(h.dtype).toBe('F32');
      expect(h.shape).toEqual(t.shape);
      expect(h.data_offsets).toEqual([end, end + t.data.length * 4]);
      const got = data.slice(h.data_offsets[0], h.data_offsets[1]);
      expect(Array.from(got)).toEqual(Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)));
      end = h.data_offsets[1];
    }
    expect(data.length).toBe(end);
  });

  it('omits __metadata__ when there is none and stays 8-byte aligned', () => {
    const bytes = encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [1], data: new Float32Array([1]) }], {});
    const n = new DataView(bytes.buffer).getUint32(0, true);
    expect(n % 8).toBe(0);
    expect(JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))).not.toHaveProperty('__metadata__');
  });

  it('refuses mismatched shapes and duplicate names (programming errors)', () => {
    expect(() => encodeSafetensors([{ name: 'x', dtype: 'F32', shape: [2], data: new Float32Array(3) }], {})).toThrow(/shape/);
    const t: TensorIn = { name: 'x', dtype: 'F32', shape: [1], data: new Float32Array(1) };
    expect(() => encodeSafetensors([t, t], {})).toThrow(/duplicate/);
  });
});

describe('decodeSafetensors', () => {
  it('round-trips bit-exactly, including subarray views', () => {
    const big = new Float32Array(10).map((_, i) => i * 0.1);
    const tensors = [...sample(), { name: 'view', dtype: 'F32' as const, shape: [2, 2], data: big.subarray(3, 7) }];
    const meta = { a: 'b', unicode: 'naïve ☃' };
    const out = decodeSafetensors(encodeSafetensors(tensors, meta));
    expect(out.metadata).toEqual(meta);
    expect([...out.tensors.keys()]).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const got = out.tensors.get(t.name)!;
      expect(got.dtype).toBe('F32');
      expect(got.shape).toEqual(t.shape);
      expect(bits(got.data)).toEqual(bits(t.data));
    }
  });

  it('reads from a Uint8Array at an odd offset of a larger buffer', () => {
    const file = encodeSafetensors(sample(), {});
    const host = new Uint8Array(file.length + 3);
    host.set(file, 1);
    const out = decodeSafetensors(host.subarray(1, 1 + file.length));
    expect(bits(out.tensors.get('b')!.data)).toEqual(bits(new Float32Array([1, 2, 3, 4, 5])));
  });

  it('converts F16 and BF16 to f32 exactly', () => {
    const f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x8000, 0x0400];
    const f16Want = [1, -2, 0.5, 65504, 2 ** -24, 1023 * 2 ** -24, Infinity, -Infinity, -0, 2 ** -14];
    const bf16 = [0x3f80, 0xc000, 0x4049, 0x0001, 0x7f80];
    const bf16Want = [1, -2, 3.140625, new Float32Array(new Uint32Array([0x00010000]).buffer)[0], Infinity];
    const data = new Uint8Array(2 * (f16.length + bf16.length) + 2);
    const dv = new DataView(data.buffer);
    [...f16, ...bf16].forEach((h, i) => dv.setUint16(2 * i, h, true));
    dv.setUint16(2 * (f16.length + bf16.length), 0x7e00, true); // f16 NaN
    const header = {
      h: { dtype: 'F16', shape: [f16.length], data_offsets: [0, 2 * f16.length] },
      b: { dtype: 'BF16', shape: [bf16.length], data_offsets: [2 * f16.length, 2 * (f16.length + bf16.length)] },
      n: { dtype: 'F16', shape: [1], data_offsets: [2 * (f16.length + bf16.length), data.length] },
    };
    const out = decodeSafetensors(rawFile(header, data));
    expect(out.tensors.get('h')!.dtype).toBe('F16');
    expect(Array.from(out.tensors.get('h')!.data)).toEqual(f16Want);
    expect(Object.is(out.tensors.get('h')!.data[8], -0)).toBe(true);
    expect(Array.from(out.tensors.get('b')!.data)).toEqual(bf16Want);
    expect(out.tensors.get('n')!.data[0]).toBeNaN();
    expect(out.metadata).toEqual({});
  });

  it('checks but does not convert skipped tensors, whatever their dtype', () => {
    const header = {
      mask: { dtype: 'BOOL', shape: [2, 2], data_offsets: [0, 4] },
      x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
    };
    const data = new Uint8Array([1, 0, 1, 1, 0, 0, 0x80, 0x3f]);
    expectCheckpointError(() => decodeSafetensors(rawFile(header, data)), /"mask" is BOOL/);
    const out = decodeSafetensors(rawFile(header, data), { skip: (n) => n === 'mask' });
    expect([...out.tensors.keys()]).toEqual(['x']);
    expect(out.tensors.get('x')!.data[0]).toBe(1);
    const short = { ...header, mask: { dtype: 'BOOL', shape: [2, 3], data_offsets: [0, 4] } };
    expectCheckpointError(() => decodeSafetensors(rawFile(short, data), { skip: () => true }), /is 4 bytes but its shape \[2,3\] of BOOL needs 6/);
  });
});

describe('decodeSafetensors on untrusted input', () => {
  const good = encodeSafetensors(sample(), { m: 'x' });
  const headerLen = new DataView(good.buffer).getUint32(0, true);

  it('rejects truncation at every interesting length', () => {
    const cuts = [0, 1, 7, 8, 9, 8 + headerLen - 1, 8 + headerLen, 8 + headerLen + 1, good.length - 4, good.length - 1];
    for (const n of cuts) expectCheckpointError(() => decodeSafetensors(good.subarray(0, n)), /truncated|too short|not valid|JSON/);
    expectCheckpointError(() => decodeSafetensors(good.subarray(0, good.length - 1)), /truncated: its header says 60 bytes of tensors but the file has 59 bytes after the header/);
  });

  it('rejects bytes after the last tensor', () => {
    const longer = new Uint8Array(good.length + 4);
    longer.set(good);
    expectCheckpointError(() => decodeSafetensors(longer), /4 bytes of unexpected data after its last tensor/);
  });

  it('says what a file that is no safetensors most likely is, and what to do', () => {
    const withStart = (...b: number[]) => {
      const f = new Uint8Array(64);
      f.set(b);
      return f;
    };
    expectCheckpointError(() => decodeSafetensors(withStart(0x50, 0x4b, 0x03, 0x04)), /^this is not a safetensors checkpoint: it looks like a zip archive/);
    expectCheckpointError(() => decodeSafetensors(withStart(0x80, 0x02, 0x7d)), /it looks like a Python pickle/);
    expectCheckpointError(() => decodeSafetensors(withStart(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a)), /it looks like a PNG image/);
    try {
      decodeSafetensors(withStart(0x80, 0x04, 0x95));
    } catch (e) {
      expect((e as { hint: string }).hint).toMatch(/kiln import --hf/);
    }
    // Asked only once the framing fails: a real header 0x280 bytes long starts like a pickle.
    expect(otherFormat(new Uint8Array([0x80, 0x02, 0, 0, 0, 0, 0, 0]))).not.toBeNull();
    const meta = JSON.stringify({ __metadata__: { note: 'x'.repeat(0x280 - 30) } });
    const header = new TextEncoder().encode(meta.padEnd(0x280, ' '));
    const framed = new Uint8Array(8 + header.length);
    new DataView(framed.buffer).setUint32(0, header.length, true);
    framed.set(header, 8);
    expect(framed[0]).toBe(0x80);
    expect(framed[1]).toBe(0x02);
    expect(decodeSafetensors(framed).tensors.size).toBe(0);
  });

  it('rejects absurd and impossible header lengths', () => {
    const f = good.slice();
    new DataView(f.buffer).setUint32(4, 1, true);
    expectCheckpointError(() => decodeSafetensors(f), /^this is not a safetensors checkpoint: its first 8 bytes claim a header of .*above the 100\.0 MB limit/);
    const g = good.slice();
    new DataView(g.buffer).setUint32(0, 99_000_000, true);
    expectCheckpointError(() => decodeSafetensors(g), /truncated: its header says 99\.0 MB of JSON/);
  });

  it('rejects bad JSON, non-objects and bad metadata', () => {
    expectCheckpointError(() => decodeSafetensors(rawFile(null, new Uint8Array(0), '{"a":')), /not valid JSON/);
    expectCheckpointError(() => decodeSafetensors(rawFile(null, new Uint8Array(0), '[1, 2]')), /does not start with "\{"/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0))), /metadata "a" is not a string/);
    const bad = rawFile({}, new Uint8Array(0));
    bad[9] = 0xff;
    expectCheckpointError(() => decodeSafetensors(bad), /UTF-8/);
  });

  it('rejects offsets outside the data, overlaps, gaps and size mismatches', () => {
    const data = new Uint8Array(16);
    const t = (o: [number, number], shape = [2]) => ({ dtype: 'F32', shape, data_offsets: o });
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([0, 8]), b: t([8, 24], [4]) }, data)), /truncated: its header says 24 bytes of tensors but the file has 16 bytes/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([0, 8]), b: t([4, 12]), c: t([8, 16]) }, data)), /"a" and "b" overlap/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([0, 8]), b: t([12, 20]) }, new Uint8Array(20))), /4 unused bytes before tensor "b"/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([0, 12]) }, data)), /"a" is 12 bytes but its shape \[2\] of F32 needs 8/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([8, 0]) }, data)), /bad data_offsets/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([0, 8], [-2]) }, data)), /bad shape/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: t([0, 8], [1e300, 1e300]) }, data)), /bad shape|needs/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: { dtype: 'Q4', shape: [2], data_offsets: [0, 8] } }, data)), /unknown dtype "Q4"/);
    expectCheckpointError(() => decodeSafetensors(rawFile({ a: 5 }, data)), /no description/);
  });

  it('gives each failure a hint', () => {
    const e = expectCheckpointError(() => decodeSafetensors(new Uint8Array(3)), /too short/);
    expect(e.hint.length).toBeGreaterThan(10);
  });
});
