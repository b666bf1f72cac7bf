/**
 * Seeded pseudo-random numbers, the only source of randomness in cigl (never Math.random), so that the
 * same config and seed give the same run, also after a resume: the state is a plain array that
 * checkpoints save and restore.
 *
 * Generator: xoshiro128** (32-bit, fast in JS), seeded through a splitmix-style mixer.
 * `Rng.derive(seed, ...keys)` gives an independent stream per purpose and position, e.g.
 * (seed, 'augment', epoch, batch), so work scheduled in any order on any number of workers draws the
 * same numbers.
 */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number) {
    this.s = seedState(seed >>> 0);
  }

  /** An independent generator for (seed, key1, key2, ...); keys are hashed, so any strings/integers work. */
  static derive(seed: number, ...keys: readonly (string | number)[]): Rng {
    let h = mix32((seed >>> 0) ^ 0x9e3779b9);
    for (const key of keys) {
      if (typeof key === 'number') {
        h = mix32(h ^ (key >>> 0));
        h = mix32(h ^ Math.floor(key / 2 ** 32));
      } else {
        for (let i = 0; i < key.length; i++) h = mix32(h ^ key.charCodeAt(i));
        h = mix32(h ^ key.length);
      }
    }
    return new Rng(h);
  }

  static fromState(state: readonly number[]): Rng {
    const rng = new Rng(0);
    rng.setState(state);
    return rng;
  }

  getState(): number[] {
    return Array.from(this.s);
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 || state.every((v) => v === 0)) {
      throw new Error(`Rng state must be 4 words, not all zero; got [${state.join(', ')}]`);
    }
    this.s = Uint32Array.from(state);
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  nextInt(n: number): number {
    if (!(n > 0 && n <= 4294967296 && Number.isInteger(n))) {
      throw new Error(`nextInt: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /** Standard normal (Box–Muller). */
  nextNormal(): number {
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }

  /** 0..n-1 in random order. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    return this.shuffle(p);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function mix32(x: number): number {
  x = (x + 0x9e3779b9) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

function seedState(seed: number): Uint32Array {
  const s = new Uint32Array(4);
  let x = seed;
  for (let i = 0; i < 4; i++) {
    x = (x + 0x9e3779b9) >>> 0;
    s[i] = mix32(x);
  }
  if (s.every((v) => v === 0)) s[0] = 1;
  return s;
}
