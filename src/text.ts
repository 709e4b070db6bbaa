/**
 * Strict UTF-8 decoding of the short strings binary formats are full of (ELF
 * names, ld.so.cache keys and paths). Almost all are ASCII, and for those a
 * plain JavaScript loop is several times cheaper than a `TextDecoder` call,
 * which crosses into the runtime each time: jk_cp decodes about two thousand
 * such strings per run. Anything else goes through the strict decoder, so
 * invalid UTF-8 is refused exactly as before.
 *
 * @module
 */

const strict = new TextDecoder("utf-8", { fatal: true });

/** Longest run handed to `String.fromCharCode` at once (its argument count is bounded). */
const SPREAD_MAX = 4096;

/**
 * Decodes `bytes` as UTF-8; throws a `TypeError` on invalid input (as a fatal
 * `TextDecoder` does).
 *
 * @example
 * ```ts
 * decodeUtf8Strict(new Uint8Array([0x6c, 0x69, 0x62, 0x63])); // "libc"
 * decodeUtf8Strict(new Uint8Array([0xff])); // throws TypeError
 * ```
 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n > SPREAD_MAX) return strict.decode(bytes);
  for (let i = 0; i < n; i++) {
    if (bytes[i] >= 0x80) return strict.decode(bytes);
  }
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}
