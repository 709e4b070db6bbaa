/**
 * jk_socketd's per-socket byte-rate limiter, reproducing jailkit 2.23's
 * base/peak/interval algorithm exactly (reference §5.3), including its clamps
 * (§5.1 step 5) and its single-precision `float` interval.
 *
 * Model. Each socket counts the bytes received in the current window.
 * - Normally at most `base` bytes pass per `interval`.
 * - A window may go up to `peak` only if the previous window stayed within `base`.
 * - Going over `peak`, or over `base` right after a peak window, stops the
 *   socket for the rest of the window: jailkit sleeps, so nothing is read and
 *   senders block once the kernel queue is full.
 *
 * Edges kept on purpose, because they are what jailkit does:
 * - a message is forwarded *before* it is counted, so the one that crosses a
 *   limit still goes through; the penalty is the pause after it;
 * - windows only advance when a message arrives, and the elapsed-time test
 *   comes after the bytes are added: after a long idle spell the first message
 *   is counted into the stale window before that window is closed;
 * - every threshold is a strict `>`;
 * - after a pause the new window starts when the pause ends (the caller says
 *   when, with {@link RateLimiter.resume}), not when it was scheduled to end.
 *
 * The limiter never reads a clock or sleeps itself: the caller passes the time
 * in, and pauses the socket for as long as it is told. The daemon passes the
 * monotonic clock; the tests pass a virtual one.
 *
 * @module
 */

/** jailkit's defaults when a value is absent or out of range. */
export const DEFAULT_BASE = 511, DEFAULT_PEAK = 2048, DEFAULT_INTERVAL = 5.0;
/** The interval jailkit's command line uses when `--interval` is not given (the ini's is 5.0). */
export const CLI_DEFAULT_INTERVAL = 10.0;

/** Limits of one socket, after clamping. */
export interface RateLimits {
  /** Bytes per interval normally allowed. */
  base: number;
  /** Bytes one window may reach if the window before it stayed within `base`. */
  peak: number;
  /** Window length in whole microseconds. */
  intervalUs: number;
}

/** A value of the configuration replaced by jailkit's default, for a notice. */
export interface ClampNotice {
  key: "base" | "peak" | "interval";
  given: number;
  used: number;
}

/** Limits as configured, and what was replaced to get there. */
export interface ClampedLimits {
  limits: RateLimits;
  /** The interval in seconds as jailkit keeps it (a C `float`), for messages. */
  intervalSeconds: number;
  notices: ClampNotice[];
}

/**
 * Applies jailkit's clamps: base outside [10, 1 000 000] becomes 511; peak
 * outside [100, 10 000 000] or below the (clamped) base becomes 2048; an
 * interval outside [0.01, 60.0] seconds becomes 5.0. The interval is held in a
 * C `float`, compared in single precision and converted to microseconds by
 * truncation, exactly as jailkit does; so `0.01` itself (0.00999999977… as a
 * float) is out of range, and `0.7` gives 699 999 µs. With base above 2048,
 * an out-of-range peak still becomes 2048, below the base (jailkit's quirk).
 *
 * @example
 * ```ts
 * clampLimits(100, 300, 2).limits; // { base: 100, peak: 300, intervalUs: 2000000 }
 * clampLimits(5, 300, 2).notices; // [{ key: "base", given: 5, used: 511 }]
 * ```
 */
export function clampLimits(base: number, peak: number, interval: number): ClampedLimits {
  const notices: ClampNotice[] = [];
  let b = base, p = peak;
  let seconds = Math.fround(interval);
  if (!(b >= 10 && b <= 1_000_000)) {
    notices.push({ key: "base", given: base, used: DEFAULT_BASE });
    b = DEFAULT_BASE;
  }
  if (!(p >= 100 && p <= 10_000_000) || p < b) {
    notices.push({ key: "peak", given: peak, used: DEFAULT_PEAK });
    p = DEFAULT_PEAK;
  }
  if (!(seconds >= 0.01 && seconds <= 60.0)) {
    notices.push({ key: "interval", given: interval, used: DEFAULT_INTERVAL });
    seconds = Math.fround(DEFAULT_INTERVAL);
  }
  return {
    limits: { base: b, peak: p, intervalUs: Math.trunc(seconds * 1_000_000) },
    intervalSeconds: seconds,
    notices,
  };
}

/** Why a socket is paused. */
export type ThrottleReason = "peak" | "after-peak";

/** The limiter's answer when a socket must stop reading for a while. */
export interface Throttle {
  reason: ThrottleReason;
  /** How long to stop reading, in microseconds; 0 when the window is already over. */
  pauseUs: number;
  /**
   * jailkit's warning text, e.g. `device /srv/j/dev/log is over the peak limit
   * (150 bytes/s)`.
   */
  message: string;
}

/**
 * The limit of a window as a rate in whole bytes per second, as jailkit
 * prints it (integer division).
 *
 * @example
 * ```ts
 * bytesPerSecond(300, 2_000_000); // 150
 * ```
 */
export function bytesPerSecond(bytes: number, intervalUs: number): number {
  return Math.floor(bytes * 1_000_000 / intervalUs);
}

/**
 * The limiter of one socket.
 *
 * @example
 * ```ts
 * const limiter = new RateLimiter("/srv/j/dev/log", { base: 100, peak: 300, intervalUs: 2e6 }, 0);
 * const throttle = limiter.account(56, now);
 * if (throttle) {
 *   pauseSocketFor(throttle.pauseUs);
 *   // ... when reading again:
 *   limiter.resume(later);
 * }
 * ```
 */
export class RateLimiter {
  /** Bytes counted in the current window. */
  #size = 0;
  /** When the current window started, in microseconds. */
  #windowStart: number;
  /** Whether the previous window ended above `base`. */
  #previousWasPeak = false;
  /** Set while the caller pauses the socket; cleared by `resume`. */
  #paused = false;

  /**
   * @param socketPath the socket's path, for the warning texts
   * @param limits the clamped limits (see {@link clampLimits})
   * @param startUs when the socket was created: the first window starts then
   */
  constructor(readonly socketPath: string, readonly limits: RateLimits, startUs: number) {
    this.#windowStart = startUs;
  }

  /** Bytes counted in the current window (for tests and diagnostics). */
  get size(): number {
    return this.#size;
  }

  /** Whether the previous window went above `base`. */
  get previousWasPeak(): boolean {
    return this.#previousWasPeak;
  }

  /**
   * Counts a message of `bytes` received (and already forwarded) at `nowUs`.
   * Returns `null` to go on reading, or a {@link Throttle}: stop reading this
   * socket for `pauseUs`, then call {@link resume} with the time reading
   * starts again, which opens the next window.
   *
   * @example
   * ```ts
   * limiter.account(56, 250_000); // null, or { reason: "peak", pauseUs: 1_750_000, ... }
   * ```
   */
  account(bytes: number, nowUs: number): Throttle | null {
    if (this.#paused) throw new Error(`rate limiter of ${this.socketPath}: account while paused`);
    const { base, peak, intervalUs } = this.limits;
    this.#size += bytes;
    const elapsed = nowUs - this.#windowStart;
    if (this.#size > peak) {
      const rate = bytesPerSecond(peak, intervalUs);
      return this.#pause("peak", elapsed, `over the peak limit (${rate} bytes/s)`);
    }
    if (this.#size > base) {
      if (elapsed > intervalUs) {
        // The window that just ended went above base: the next one may not peak.
        this.#restart(nowUs, true);
      } else if (this.#previousWasPeak) {
        const rate = bytesPerSecond(base, intervalUs);
        return this.#pause(
          "after-peak",
          elapsed,
          `over the normal limit (${rate} bytes/s), directly after a peak`,
        );
      }
      // Otherwise this window is allowed to peak: nothing changes.
      return null;
    }
    if (elapsed > intervalUs) this.#restart(nowUs, false);
    return null;
  }

  /**
   * Ends a pause: the next window starts at `nowUs`.
   *
   * @example
   * ```ts
   * limiter.resume(2_000_000);
   * ```
   */
  resume(nowUs: number): void {
    if (!this.#paused) throw new Error(`rate limiter of ${this.socketPath}: resume without pause`);
    this.#paused = false;
    this.#windowStart = nowUs;
  }

  #pause(reason: ThrottleReason, elapsed: number, what: string): Throttle {
    this.#size = 0;
    this.#previousWasPeak = true;
    this.#paused = true;
    return {
      reason,
      pauseUs: Math.max(0, this.limits.intervalUs - elapsed),
      message: `device ${this.socketPath} is ${what}`,
    };
  }

  #restart(nowUs: number, wasPeak: boolean): void {
    this.#size = 0;
    this.#windowStart = nowUs;
    this.#previousWasPeak = wasPeak;
  }
}
