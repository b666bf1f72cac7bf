import t from 'tap';
import { encodeSafetensors } from '../../src/sinks/safetensors-file';

t.test('safetensors layout: u64 header length, space-padded JSON, packed little-endian float32 data', async (t) => {
  const a = Float32Array.from([1, -2.5, 3]);
  const b = Float32Array.from([0.25, 0, -0, 7]);
  const bytes = encodeSafetensors([{ name: 'x/kernel', shape: [3, 1], values: a }, { name: 'y', shape: [2, 2], values: b }], { temperature: '1.5' });
  const n = Number(bytes.readBigUInt64LE(0));
  t.equal(n % 8, 0, 'header padded to a multiple of 8');
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  t.match(text, / *$/, 'padding is spaces');
  t.same(JSON.parse(text), {
    __metadata__: { temperature: '1.5' },
    'x/kernel': { dtype: 'F32', shape: [3, 1], data_offsets: [0, 12] },
    y: { dtype: 'F32', shape: [2, 2], data_offsets: [12, 28] },
  });
  t.equal(bytes.length, 8 + n + 28, 'nothing after the data');
  const data = bytes.subarray(8 + n);
  t.same(Array.from({ length: 7 }, (_, i) => data.readFloatLE(4 * i)), [1, -2.5, 3, 0.25, 0, -0, 7]);
  t.equal(JSON.parse(encodeSafetensors([], {}).subarray(8).toString().trim()).__metadata__, undefined, 'no empty __metadata__');
});

t.test('bad tensors are named in the error', async (t) => {
  t.throws(() => encodeSafetensors([{ name: 'w', shape: [2, 2], values: new Float32Array(3) }]), /tensor "w" has shape \[2, 2\] but 3 values/);
  t.throws(() => encodeSafetensors([{ name: 'w', shape: [1], values: new Float32Array(1) }, { name: 'w', shape: [1], values: new Float32Array(1) }]), /"w" is reserved or repeated/);
  t.throws(() => encodeSafetensors([{ name: '__metadata__', shape: [1], values: new Float32Array(1) }]), /reserved/);
});
