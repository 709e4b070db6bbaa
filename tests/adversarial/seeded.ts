/**
 * A small seeded random generator for the fuzz, race and fault tests, so a
 * failure can be replayed: every test prints its seed in failure messages,
 * and `JK_SEED=N` replaces the fixed default.
 *
 * @module
 */

/**
 * The seed of this run: `JK_SEED` when set (a decimal number), else `fallback`.
 *
 * @example
 * ```ts
 * const rng = new Rng(testSeed(7));
 * ```
 */
export function testSeed(fallback: number): number {
  const given = Deno.env.get("JK_SEED");
  if (given === undefined || given === "") return fallback;
  const seed = Number(given);
  if (!Number.isSafeInteger(seed)) throw new Error(`JK_SEED must be an integer: ${given}`);
  return seed;
}

/**
 * mulberry32: 32 bits of state, fast, good enough to pick test cases.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * rng.int(10); // 0..9, the same sequence for the same seed
 * ```
 */
export class Rng {
  #state: number;

  /** @param seed any integer; the same seed gives the same sequence */
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}
