/**
 * decodeUtf8Strict (src/text.ts) against a fatal TextDecoder: same string, or
 * both refuse, for seeded random byte strings biased towards the edge cases
 * (ASCII, multi-byte sequences, lone continuation bytes, overlongs, surrogates).
 */

import assert from "node:assert/strict";
import { decodeUtf8Strict } from "../src/text.ts";
import { Rng, testSeed } from "./harness.ts";

const reference = new TextDecoder("utf-8", { fatal: true });

function expected(bytes: Uint8Array): string | "throws" {
  try {
    return reference.decode(bytes);
  } catch {
    return "throws";
  }
}

function actual(bytes: Uint8Array): string | "throws" {
  try {
    return decodeUtf8Strict(bytes);
  } catch (e) {
    assert.ok(e instanceof TypeError, `a ${e} is not a TypeError`);
    return "throws";
  }
}

Deno.test("decodeUtf8Strict: ASCII, non-ASCII and invalid input as a fatal TextDecoder", () => {
  const cases: number[][] = [
    [],
    [0x6c, 0x69, 0x62, 0x63, 0x2e, 0x73, 0x6f, 0x2e, 0x36], // libc.so.6
    [0xc3, 0xa9], // é
    [0xff],
    [0x80],
    [0xc0, 0xaf], // overlong "/"
    [0xed, 0xa0, 0x80], // a surrogate
    [0x61, 0xe2, 0x82], // truncated sequence
  ];
  for (const c of cases) {
    const bytes = new Uint8Array(c);
    assert.equal(actual(bytes), expected(bytes), `bytes ${c}`);
  }
  // Longer than one String.fromCharCode spread.
  const long = new Uint8Array(10_000).fill(0x41);
  assert.equal(actual(long), "A".repeat(10_000));
  long[9_999] = 0xff;
  assert.equal(actual(long), "throws");
});

Deno.test("decodeUtf8Strict: seeded random strings agree with TextDecoder", () => {
  const rng = new Rng(testSeed(20261129));
  const alphabet = [0x00, 0x2f, 0x41, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff];
  for (let round = 0; round < 5000; round++) {
    const n = rng.uint32() % 24;
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      bytes[i] = rng.uint32() % 4 === 0
        ? alphabet[rng.uint32() % alphabet.length]
        : 0x20 + rng.uint32() % 0x5f;
    }
    assert.equal(actual(bytes), expected(bytes), `seed ${rng.seed}, round ${round}: ${bytes}`);
  }
});
