/**
 * The first differing byte of two buffers, found 64 bytes at a time by a
 * WebAssembly SIMD function, for jk_check's whole-file comparison
 * (src/check/compare.ts).
 *
 * Why WebAssembly: comparing in plain JavaScript, 32 bits at a time, was the
 * largest piece of jk_check's own work on a debootstrap jail (110 MB compared
 * per run); this function does the same in a few milliseconds, and measured
 * over whole runs it saves 40-70 ms of CPU. `node:buffer`'s memcmp would cost
 * more to load (tens of milliseconds per thread without a code cache) than it
 * saves. The module below is 251 bytes, written out by hand with a comment
 * per instruction so that it can be reviewed like the JavaScript it replaces;
 * it imports nothing, compiles in microseconds and needs no permission.
 *
 * Both buffers live in the module's own memory ({@link DiffBuffers}), so the
 * files are read straight into it and nothing is copied. Where WebAssembly is
 * not available, the same buffers are plain arrays and the JavaScript loop
 * ({@link firstDifferenceJs}) compares them.
 *
 * @module
 */

/**
 * The module: one function, `diff(a, b, n) → i`, the least `i < n` with
 * `mem[a + i] != mem[b + i]`, or `n`; and its memory, exported as `memory`.
 * Out-of-range addresses trap (they cannot happen: {@link DiffBuffers} only
 * passes views of that memory). In the function, locals 0-2 are the
 * parameters `a`, `b`, `n`; 3 is `i`; 4 and 5 are `a + i` and `b + i`.
 * Encoding: `0xfd, op` is a SIMD instruction (`v128.load` 0x00, `v128.or`
 * 0x50, `v128.xor` 0x51, `v128.any_true` 0x53); a load is followed by its
 * memarg, the alignment hint (log2, 0 = none promised) then the offset.
 */
// deno-fmt-ignore
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, //   "\0asm", version 1
  // Type section (1): one type, (i32, i32, i32) -> i32.
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f,
  // Function section (3): one function, of type 0.
  0x03, 0x02, 0x01, 0x00,
  // Memory section (5): one memory, no maximum, 8 pages (512 KiB) to start with.
  0x05, 0x03, 0x01, 0x00, 0x08,
  // Export section (7): "diff" = function 0, "memory" = memory 0.
  0x07, 0x11, 0x02,
  0x04, 0x64, 0x69, 0x66, 0x66, 0x00, 0x00,
  0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00,
  // Code section (10) of 202 bytes (LEB128): one body of 199 bytes, whose locals are
  // 3 more i32 (i, a + i, b + i).
  0x0a, 0xca, 0x01, 0x01, 0xc7, 0x01, 0x01, 0x03, 0x7f,
  // -- 64 bytes per step, while at least 64 are left and all are equal --
  0x02, 0x40, //                block                       (exit: on to 16 at a time)
  0x03, 0x40, //                  loop
  0x20, 0x02, 0x20, 0x03, //        local.get n, local.get i
  0x6b, //                          i32.sub                 n - i (i <= n always)
  0x41, 0xc0, 0x00, //              i32.const 64            (signed LEB128)
  0x49, 0x0d, 0x01, //              i32.lt_u, br_if 1       fewer than 64 left: exit
  0x20, 0x00, 0x20, 0x03, 0x6a, //  local.get a, local.get i, i32.add
  0x22, 0x04, //                    local.tee 4             p = a + i
  0xfd, 0x00, 0x00, 0x00, //        v128.load offset=0      p[0..16)
  0x20, 0x01, 0x20, 0x03, 0x6a, //  local.get b, local.get i, i32.add
  0x22, 0x05, //                    local.tee 5             q = b + i
  0xfd, 0x00, 0x00, 0x00, //        v128.load offset=0      q[0..16)
  0xfd, 0x51, //                    v128.xor                nonzero where they differ
  0x20, 0x04, 0xfd, 0x00, 0x00, 0x10, //  local.get p, v128.load offset=16
  0x20, 0x05, 0xfd, 0x00, 0x00, 0x10, //  local.get q, v128.load offset=16
  0xfd, 0x51, 0xfd, 0x50, //        v128.xor, v128.or       accumulate
  0x20, 0x04, 0xfd, 0x00, 0x00, 0x20, //  local.get p, v128.load offset=32
  0x20, 0x05, 0xfd, 0x00, 0x00, 0x20, //  local.get q, v128.load offset=32
  0xfd, 0x51, 0xfd, 0x50, //        v128.xor, v128.or
  0x20, 0x04, 0xfd, 0x00, 0x00, 0x30, //  local.get p, v128.load offset=48
  0x20, 0x05, 0xfd, 0x00, 0x00, 0x30, //  local.get q, v128.load offset=48
  0xfd, 0x51, 0xfd, 0x50, //        v128.xor, v128.or
  0xfd, 0x53, //                    v128.any_true           some byte of the 64 differs
  0x0d, 0x01, //                    br_if 1                 then exit, i at this block
  0x20, 0x03, 0x41, 0xc0, 0x00, //  local.get i, i32.const 64
  0x6a, 0x21, 0x03, //              i32.add, local.set i    i += 64
  0x0c, 0x00, //                    br 0                    next step
  0x0b, 0x0b, //                  end loop, end block
  // -- 16 bytes per step, while at least 16 are left and all are equal --
  0x02, 0x40, 0x03, 0x40, //      block, loop
  0x20, 0x02, 0x20, 0x03, 0x6b, //  local.get n, local.get i, i32.sub
  0x41, 0x10, 0x49, 0x0d, 0x01, //  i32.const 16, i32.lt_u, br_if 1   fewer than 16 left: exit
  0x20, 0x00, 0x20, 0x03, 0x6a, //  local.get a, local.get i, i32.add
  0xfd, 0x00, 0x00, 0x00, //        v128.load               a[i..i+16)
  0x20, 0x01, 0x20, 0x03, 0x6a, //  local.get b, local.get i, i32.add
  0xfd, 0x00, 0x00, 0x00, //        v128.load               b[i..i+16)
  0xfd, 0x51, 0xfd, 0x53, //        v128.xor, v128.any_true
  0x0d, 0x01, //                    br_if 1                 they differ: exit, i at this block
  0x20, 0x03, 0x41, 0x10, 0x6a, //  local.get i, i32.const 16, i32.add
  0x21, 0x03, 0x0c, 0x00, //        local.set i, br 0       i += 16, next step
  0x0b, 0x0b, //                  end loop, end block
  // -- one byte per step: the differing byte, or the last n mod 16 --
  0x02, 0x40, 0x03, 0x40, //      block, loop
  0x20, 0x03, 0x20, 0x02, //        local.get i, local.get n
  0x4f, 0x0d, 0x01, //              i32.ge_u, br_if 1       i = n: exit
  0x20, 0x00, 0x20, 0x03, 0x6a, //  local.get a, local.get i, i32.add
  0x2d, 0x00, 0x00, //              i32.load8_u             a[i]
  0x20, 0x01, 0x20, 0x03, 0x6a, //  local.get b, local.get i, i32.add
  0x2d, 0x00, 0x00, //              i32.load8_u             b[i]
  0x47, 0x0d, 0x01, //              i32.ne, br_if 1         they differ: exit
  0x20, 0x03, 0x41, 0x01, 0x6a, //  local.get i, i32.const 1, i32.add
  0x21, 0x03, 0x0c, 0x00, //        local.set i, br 0       i += 1, next step
  0x0b, 0x0b, //                  end loop, end block
  0x20, 0x03, //                  local.get i             the result
  0x0b, //                      end function
]);

/** WebAssembly page size. */
const PAGE = 65536;

/** The compiled module's exports. */
interface DiffExports {
  diff(a: number, b: number, n: number): number;
  memory: WebAssembly.Memory;
}

/** The instance for this thread, null where WebAssembly (or its SIMD) is unavailable. */
function instantiate(): DiffExports | null {
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(MODULE));
    return instance.exports as unknown as DiffExports;
  } catch {
    return null;
  }
}

/**
 * Index of the first byte where `a` and `b` differ within their first `n`
 * bytes, or `n`, in plain JavaScript: whole 32-bit words while both views are
 * 4-aligned, then bytes. The fallback of {@link DiffBuffers}, and the
 * reference its tests compare with.
 *
 * @example
 * ```ts
 * firstDifferenceJs(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]), 3); // 2
 * ```
 */
export function firstDifferenceJs(a: Uint8Array, b: Uint8Array, n: number): number {
  let i = 0;
  if ((a.byteOffset & 3) === 0 && (b.byteOffset & 3) === 0) {
    const words = n >>> 2;
    const x = new Int32Array(a.buffer, a.byteOffset, words);
    const y = new Int32Array(b.buffer, b.byteOffset, words);
    let w = 0;
    while (w < words && x[w] === y[w]) w++;
    i = w << 2;
  }
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Two byte buffers, `host` of a fixed size and `jail` of a size chosen per
 * comparison, and the first difference between views of them. They share one
 * WebAssembly memory (`host` first, `jail` after it) when WebAssembly is
 * available. Views are valid until the next {@link DiffBuffers.jail} call
 * that asks for more room than there is (the memory then grows, which
 * detaches the old views).
 *
 * @example
 * ```ts
 * const bufs = new DiffBuffers(4096);
 * const a = bufs.jail(100).subarray(0, 100), b = bufs.host.subarray(0, 100);
 * a.fill(1); b.fill(1); b[42] = 2;
 * bufs.firstDifference(a, b, 100); // 42
 * ```
 */
export class DiffBuffers {
  #wasm: DiffExports | null;
  /** The memory's current buffer (a getter call on `memory.buffer` costs more). */
  #buffer: ArrayBufferLike | null = null;
  readonly #hostSize: number;
  #host: Uint8Array;
  #jail: Uint8Array;

  /**
   * @param hostSize bytes of the `host` buffer, also the least size of `jail`
   * @param useWasm false for plain arrays and the JavaScript loop (for tests)
   */
  constructor(hostSize: number, useWasm = true) {
    this.#hostSize = hostSize;
    this.#wasm = useWasm ? instantiate() : null;
    if (this.#wasm && this.#grow(2 * hostSize)) {
      this.#host = this.#jail = new Uint8Array(0);
      this.#views(hostSize);
    } else {
      this.#wasm = null;
      this.#host = new Uint8Array(hostSize);
      this.#jail = new Uint8Array(hostSize);
    }
  }

  /** Whether the comparison runs in WebAssembly. */
  get simd(): boolean {
    return this.#wasm !== null;
  }

  /** The host file's buffer. */
  get host(): Uint8Array {
    return this.#host;
  }

  /**
   * The jail file's buffer, at least `size` bytes (and at least the host
   * buffer's size). If the WebAssembly memory cannot grow that far, it is a
   * plain array, compared by {@link firstDifferenceJs}.
   */
  jail(size: number): Uint8Array {
    if (size > this.#jail.length) {
      if (this.#wasm && this.#grow(this.#hostSize + size)) this.#views(size);
      else this.#jail = new Uint8Array(size);
    }
    return this.#jail;
  }

  /**
   * Index of the first byte where `a` and `b` differ within their first `n`
   * bytes (at most the length of either), or `n`. Views of these buffers are
   * compared in WebAssembly, anything else by {@link firstDifferenceJs}.
   */
  firstDifference(a: Uint8Array, b: Uint8Array, n: number): number {
    if (n > a.length || n > b.length) throw new RangeError("firstDifference: n beyond a view");
    const wasm = this.#wasm;
    if (wasm === null || a.buffer !== this.#buffer || b.buffer !== this.#buffer) {
      return firstDifferenceJs(a, b, n);
    }
    return wasm.diff(a.byteOffset, b.byteOffset, n);
  }

  /** Grows the memory to at least `bytes`; false if it cannot (RangeError: out of memory). */
  #grow(bytes: number): boolean {
    const memory = this.#wasm!.memory;
    const pages = Math.ceil(bytes / PAGE) - memory.buffer.byteLength / PAGE;
    try {
      if (pages > 0) memory.grow(pages);
      return true;
    } catch (e) {
      if (e instanceof RangeError) return false;
      throw e;
    }
  }

  /** (Re)makes both views over the current memory, the jail's of `jailSize` bytes. */
  #views(jailSize: number): void {
    const buffer = this.#buffer = this.#wasm!.memory.buffer;
    this.#host = new Uint8Array(buffer, 0, this.#hostSize);
    this.#jail = new Uint8Array(buffer, this.#hostSize, jailSize);
  }
}
