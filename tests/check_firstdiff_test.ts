/**
 * The WebAssembly first-difference search of jk_check's byte comparison
 * (src/check/firstdiff.ts), against the plain JavaScript loop, on random
 * buffers with one byte changed at every kind of position.
 */

import assert from "node:assert/strict";
import { DiffBuffers, firstDifferenceJs } from "../src/check/firstdiff.ts";

/** The obvious byte loop: the reference for both implementations. */
function reference(a: Uint8Array, b: Uint8Array, n: number): number {
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Fills `a` with random bytes (in 64 KiB steps, getRandomValues' limit) and copies it to `b`. */
function randomPair(a: Uint8Array, b: Uint8Array, n: number): void {
  for (let at = 0; at < n; at += 65536) {
    crypto.getRandomValues(a.subarray(at, Math.min(n, at + 65536)));
  }
  b.set(a.subarray(0, n));
}

/**
 * Positions to plant a difference in a buffer of `n` bytes: first and last
 * byte, each side of every 16- and 64-byte block edge near the start and the
 * end, inside a block, and in the tail after the last whole block.
 */
function positions(n: number): number[] {
  const at = new Set<number>([0, 1, n - 1, n - 2, n >> 1, n - (n % 16), n - (n % 64)]);
  for (const edge of [15, 16, 17, 31, 32, 47, 48, 63, 64, 65, 100, 127, 128]) {
    at.add(edge);
    at.add(n - 1 - edge);
  }
  return [...at].filter((i) => i >= 0 && i < n).sort((x, y) => x - y);
}

/** Checks every planted position of `n` bytes of `a` and `b`, with `find`. */
function checkAll(
  a: Uint8Array,
  b: Uint8Array,
  n: number,
  find: (a: Uint8Array, b: Uint8Array, n: number) => number,
): void {
  randomPair(a, b, n);
  assert.equal(find(a, b, n), n, `equal buffers of ${n} bytes`);
  for (const i of positions(n)) {
    const saved = b[i];
    b[i] ^= 1 << (i % 8);
    const want = reference(a, b, n);
    assert.equal(want, i);
    assert.equal(find(a, b, n), want, `difference at ${i} of ${n}`);
    assert.equal(firstDifferenceJs(a, b, n), want, `JS loop, difference at ${i} of ${n}`);
    // A second difference after the first does not change the answer.
    if (i + 1 < n) {
      b[n - 1] ^= 0x80;
      assert.equal(find(a, b, n), reference(a, b, n), `two differences from ${i} of ${n}`);
      b[n - 1] ^= 0x80;
    }
    b[i] = saved;
  }
}

Deno.test("WebAssembly SIMD is available here, so the tests below exercise it", () => {
  assert.equal(new DiffBuffers(1024).simd, true);
  assert.equal(new DiffBuffers(1024, false).simd, false);
});

Deno.test("first difference: lengths 0 to 300, every position class", () => {
  for (const useWasm of [true, false]) {
    const bufs = new DiffBuffers(4096, useWasm);
    for (let n = 0; n <= 300; n++) {
      const a = bufs.jail(n), b = bufs.host;
      checkAll(a, b, n, (x, y, m) => bufs.firstDifference(x, y, m));
    }
  }
});

Deno.test("first difference: views at every alignment, both orders", () => {
  const bufs = new DiffBuffers(4096);
  const jail = bufs.jail(4096), host = bufs.host;
  for (let shiftA = 0; shiftA < 17; shiftA++) {
    for (const shiftB of [0, 1, 3, 8, 15]) {
      const n = 1000;
      const a = jail.subarray(shiftA, shiftA + n), b = host.subarray(shiftB, shiftB + n);
      checkAll(a, b, n, (x, y, m) => bufs.firstDifference(x, y, m));
      checkAll(b, a, n, (x, y, m) => bufs.firstDifference(x, y, m));
    }
  }
});

Deno.test("first difference: large buffers, and the memory growing under a kept view", () => {
  const size = 3 * 1024 * 1024 + 37;
  const bufs = new DiffBuffers(256 * 1024);
  const a = bufs.jail(size).subarray(0, size);
  const b = new Uint8Array(size);
  // `b` is not in the module's memory: compared by the JavaScript loop, same answers.
  checkAll(a, b, size, (x, y, m) => bufs.firstDifference(x, y, m));
  // Both in the module's memory (the host buffer holds 256 KiB of them).
  const n = 256 * 1024;
  checkAll(a, bufs.host, n, (x, y, m) => bufs.firstDifference(x, y, m));

  // Asking for more room grows the memory: old views are detached, new ones work.
  const bigger = bufs.jail(2 * size);
  assert.equal(a.length, 0, "a view of the old memory is detached");
  assert.ok(bigger.length >= 2 * size);
  checkAll(bigger, bufs.host, n, (x, y, m) => bufs.firstDifference(x, y, m));
});

Deno.test("first difference: n beyond either view is refused, not read past", () => {
  const bufs = new DiffBuffers(64);
  const a = bufs.jail(64).subarray(0, 10), b = bufs.host.subarray(0, 20);
  assert.throws(() => bufs.firstDifference(a, b, 11), RangeError);
  assert.throws(() => bufs.firstDifference(b, a, 11), RangeError);
  assert.equal(bufs.firstDifference(a, b, 0), 0);
});
