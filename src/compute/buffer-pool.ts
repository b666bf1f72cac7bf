import * as tf from '@tensorflow/tfjs';

/**
 * Recycles the large Float32Arrays that native kernels write their outputs into.
 *
 * Why: a training step produces around a gigabyte of activations and gradients. Fresh typed arrays
 * cost a page fault per 4 KiB on first touch (measured 1.5 GB/s on these VMs) and, as V8 external
 * memory, trigger a major GC every ~64 MB; together that doubled the step time of resnet20. With the
 * pool, steady-state steps allocate nothing large.
 *
 * How it stays safe: an array returns to the pool only when the cpu backend deletes the data that
 * holds it (refcount zero) and nothing else can still see it. Two ways exist for other code to get
 * hold of a backend array, and both are watched on the backend instance:
 *  - reads (dataSync, data, array, buffer: all go through readSync/read) hand out the array itself;
 *  - kernels that return a view of an input (tfjs's slice returns a subarray) store that view with
 *    write().
 * An array seen in either way is 'escaped': it is left to the garbage collector and never reused.
 * Kernels must overwrite every element of an array they allocate here (contents are stale).
 *
 * Alignment: V8 places an ArrayBuffer's data 16 bytes past a 64-byte boundary, so every 64-byte vector
 * load of an AVX-512 kernel straddled two cache lines; the sparse convolution's gathers ran 1.5× slower
 * for it (measured). Once the native path tells the pool where an array's data lies (alignWith), pool
 * arrays are views that start on a 64-byte boundary of a slightly larger buffer.
 *
 * Huge pages: arrays of at least HUGE_PAGE_MIN_BYTES come from a source the native path provides
 * (hugePagesFrom): fresh memory on a 2 MiB boundary, advised as transparent huge pages before first
 * touch. The gathers read activations in scattered 512-byte runs over megabytes, and on 4 KiB pages
 * nearly every run missed the TLB (a resnet20 step measured about 4% faster, sparse or dense).
 */
export class BufferPool {
  /** Arrays shorter than this come straight from `new Float32Array` (cheap enough, not worth tracking). */
  static readonly MIN_LENGTH = 1 << 14;
  /** Arrays from this size on come from the huge-page source when there is one (two huge pages). */
  static readonly HUGE_PAGE_MIN_BYTES = 4 << 20;

  private readonly free = new Map<number, Float32Array[]>();
  /** Every pool array ever handed out, by its ArrayBuffer (views are recognised by their buffer). */
  private readonly owned = new WeakSet<ArrayBuffer>();
  private readonly escaped = new WeakSet<ArrayBuffer>();
  private hooked: CpuBackendInternals | undefined;
  /** The data address of an array modulo 64 (alignWith); undefined: no alignment. */
  private addressMod64: ((array: Float32Array) => number) | undefined;
  /** Zero-filled huge-page-backed buffers of a given byte size (hugePagesFrom); undefined: none. */
  private hugePageBuffer: ((bytes: number) => ArrayBuffer) | undefined;
  /** Every array the pool created: a write of anything else over a pool buffer is a foreign view. */
  private readonly issued = new WeakSet<Float32Array>();
  private counters = { allocated: 0, reused: 0, recycled: 0, escaped: 0 };

  /** A Float32Array of `length` elements with unspecified contents. */
  allocate(length: number): Float32Array {
    if (length < BufferPool.MIN_LENGTH) return new Float32Array(length);
    this.watch(tf.backend());
    const reusable = this.free.get(length)?.pop();
    if (reusable) {
      this.counters.reused++;
      return reusable;
    }
    const fresh = this.alignedArray(length);
    this.owned.add(fresh.buffer as ArrayBuffer);
    this.issued.add(fresh);
    this.counters.allocated++;
    return fresh;
  }

  /**
   * Ties `companion` (a pool array that never enters the backend, e.g. a kernel's scratch copy of its
   * input that the gradient reads) to the lifetime of `owner` (a pool array stored in the backend):
   * when the backend deletes the owner's data, the companion is recycled too. Arrays too small for
   * the pool are left to the garbage collector.
   */
  attach(owner: Float32Array, companion: Float32Array): void {
    if (!this.owned.has(owner.buffer as ArrayBuffer) || !this.owned.has(companion.buffer as ArrayBuffer)) return;
    const list = this.companions.get(owner);
    if (list) list.push(companion);
    else this.companions.set(owner, [companion]);
  }

  /**
   * Makes new arrays start on a 64-byte boundary; `addressMod64` returns where an array's data lies
   * (the native addon can tell, JavaScript cannot). Arrays already handed out are unaffected.
   */
  alignWith(addressMod64: (array: Float32Array) => number): void {
    this.addressMod64 = addressMod64;
  }

  /**
   * Takes new arrays of at least HUGE_PAGE_MIN_BYTES from `source` (zero-filled buffers that start on a
   * 2 MiB boundary, so also on a 64-byte one). If the source ever throws (a runtime that refuses
   * external buffers), the pool warns once and goes back to ordinary buffers.
   */
  hugePagesFrom(source: (bytes: number) => ArrayBuffer): void {
    this.hugePageBuffer = source;
  }

  /**
   * A zero-filled Float32Array of `length` elements whose data starts on a 64-byte boundary when
   * alignWith was called (a view into a buffer 64 bytes longer), a plain one otherwise. Not pooled:
   * for long-lived buffers (allocate() uses it for pool arrays).
   */
  alignedArray(length: number): Float32Array {
    if (this.hugePageBuffer && length * 4 >= BufferPool.HUGE_PAGE_MIN_BYTES) {
      try {
        return new Float32Array(this.hugePageBuffer(length * 4));
      } catch (error) {
        this.hugePageBuffer = undefined;
        console.warn(`cigl: huge-page buffers unavailable, using ordinary ones (${(error as Error).message})`);
      }
    }
    if (!this.addressMod64) return new Float32Array(length);
    // Data of a large ArrayBuffer lives outside V8's heap and never moves, so the offset stays right.
    const buffer = new ArrayBuffer(length * 4 + 64);
    const offset = (64 - this.addressMod64(new Float32Array(buffer, 0, 16))) % 64;
    return new Float32Array(buffer, offset, length);
  }

  /** Drops every idle array (memory goes back to the garbage collector). */
  trim(): void {
    this.free.clear();
  }

  stats(): { allocated: number; reused: number; recycled: number; escaped: number; idleBytes: number } {
    let idleBytes = 0;
    for (const list of this.free.values()) for (const a of list) idleBytes += a.byteLength;
    return { ...this.counters, idleBytes };
  }

  /** Installs the read/write/dispose watches on the active cpu backend instance (once per instance). */
  private watch(backend: tf.KernelBackend): void {
    if ((this.hooked as unknown) === backend) return;
    const cpu = backend as unknown as CpuBackendInternals;
    if (typeof cpu.disposeData !== 'function' || typeof cpu.readSync !== 'function' || typeof cpu.write !== 'function' || !cpu.data) {
      throw new Error('BufferPool: the active tfjs backend is not the cpu backend');
    }
    const { write, readSync, read, disposeData } = cpu;
    // The wrappers below run with `this` = the backend.
    const pool = this;
    const escape = (values: unknown): void => {
      if (ArrayBuffer.isView(values) && this.owned.has(values.buffer as ArrayBuffer) && !this.escaped.has(values.buffer as ArrayBuffer)) {
        this.escaped.add(values.buffer as ArrayBuffer);
        this.counters.escaped++;
      }
    };
    cpu.write = function (this: CpuBackendInternals, values, shape, dtype) {
      // A pool array is written once, by the kernel that allocated it; anything else sharing its
      // memory (a second write, a subarray view) makes it escape.
      if (ArrayBuffer.isView(values) && pool.owned.has(values.buffer as ArrayBuffer)) {
        const own = values instanceof Float32Array && pool.issued.has(values);
        if (!own || pool.live.has(values as Float32Array)) escape(values);
        else pool.live.add(values);
      }
      return write.call(this, values, shape, dtype);
    };
    cpu.readSync = function (this: CpuBackendInternals, dataId) {
      escape(this.data.get(dataId)?.values);
      return readSync.call(this, dataId);
    };
    cpu.read = function (this: CpuBackendInternals, dataId) {
      escape(this.data.get(dataId)?.values);
      return read.call(this, dataId);
    };
    cpu.disposeData = function (this: CpuBackendInternals, dataId, force) {
      const values = this.data.get(dataId)?.values;
      const deleted = disposeData.call(this, dataId, force);
      if (deleted && values instanceof Float32Array && pool.live.has(values)) {
        pool.live.delete(values);
        if (!pool.escaped.has(values.buffer as ArrayBuffer)) pool.recycle(values);
        for (const companion of pool.companions.get(values) ?? []) pool.recycle(companion);
        pool.companions.delete(values);
      }
      return deleted;
    };
    this.hooked = cpu;
  }

  /** Pool arrays currently stored in the backend. */
  private readonly live = new WeakSet<Float32Array>();
  /** attach(): arrays recycled together with their owner. */
  private readonly companions = new WeakMap<Float32Array, Float32Array[]>();

  private recycle(values: Float32Array): void {
    let list = this.free.get(values.length);
    if (!list) this.free.set(values.length, (list = []));
    list.push(values);
    this.counters.recycled++;
  }
}

/** The cpu backend members the pool watches (MathBackendCPU's, typed structurally). */
interface CpuBackendInternals {
  data: { get(dataId: object): { values?: unknown } | undefined };
  write(values: unknown, shape: number[], dtype: tf.DataType): object;
  readSync(dataId: object): unknown;
  read(dataId: object): Promise<unknown>;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The process-wide pool the native kernels allocate from. */
export const bufferPool = new BufferPool();
