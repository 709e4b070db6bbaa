/**
 * jk_socketd's limiter against jailkit 2.23's measured behaviour (reference
 * §5.3), on a virtual clock: every time is given, nothing sleeps.
 */
import assert from "node:assert/strict";
import { bytesPerSecond, clampLimits, RateLimiter, type Throttle } from "../src/ratelimit.ts";

const MS = 1000;

/** One message as the daemon handled it. */
interface Delivery {
  index: number;
  /** When the daemon read and forwarded it, µs. */
  at: number;
  throttle: Throttle | null;
}

/**
 * A sender that writes `count` messages of `bytes` every `everyUs`, and a
 * daemon that reads them in order: a message waits in the socket queue while
 * the daemon pauses, as it does in the kernel.
 */
function simulate(
  limiter: RateLimiter,
  { count, bytes, everyUs }: { count: number; bytes: number; everyUs: number },
): Delivery[] {
  const out: Delivery[] = [];
  let readyAt = 0;
  for (let index = 0; index < count; index++) {
    const at = Math.max(index * everyUs, readyAt);
    const throttle = limiter.account(bytes, at);
    out.push({ index, at, throttle });
    if (throttle) {
      readyAt = at + throttle.pauseUs;
      limiter.resume(readyAt);
    }
  }
  return out;
}

Deno.test("worked example: base=100 peak=300 interval=2s, 56-byte messages every 50 ms", () => {
  const { limits } = clampLimits(100, 300, 2.0);
  const limiter = new RateLimiter("/srv/j/dev/log", limits, 0);
  const log = simulate(limiter, { count: 40, bytes: 56, everyUs: 50 * MS });

  // 1. Messages 0-5 (336 bytes > 300) are forwarded at once; the sixth crosses
  //    the peak, is still forwarded, and the socket sleeps to the end of the window.
  assert.deepEqual(
    log.slice(0, 6).map((d) => d.at),
    [0, 50, 100, 150, 200, 250].map((t) => t * MS),
  );
  assert.deepEqual(log.slice(0, 5).map((d) => d.throttle), [null, null, null, null, null]);
  assert.deepEqual(log[5].throttle, {
    reason: "peak",
    pauseUs: 1750 * MS,
    message: "device /srv/j/dev/log is over the peak limit (150 bytes/s)",
  });

  // 2. Messages 6-7 (112 > 100, right after a peak): another full-window sleep.
  assert.deepEqual([log[6].at, log[7].at], [2000 * MS, 2000 * MS]);
  assert.equal(log[6].throttle, null);
  assert.deepEqual(log[7].throttle, {
    reason: "after-peak",
    pauseUs: 2000 * MS,
    message: "device /srv/j/dev/log is over the normal limit (50 bytes/s), directly after a peak",
  });

  // 3. From then on two messages per 2-second window.
  for (let i = 8; i < 40; i++) {
    const window = Math.floor((i - 8) / 2) + 2;
    assert.equal(log[i].at, window * 2000 * MS, `message ${i}`);
    assert.equal(log[i].throttle?.reason, i % 2 ? "after-peak" : undefined, `message ${i}`);
  }
});

Deno.test("a quiet previous window allows one burst up to peak, then base again", () => {
  const limiter = new RateLimiter("s", { base: 100, peak: 300, intervalUs: 1_000_000 }, 0);
  assert.equal(limiter.account(250, 10 * MS), null); // above base, within peak: a peak window
  assert.equal(limiter.size, 250);
  // The next message after the window is over closes it as a peak window.
  assert.equal(limiter.account(10, 1100 * MS), null);
  assert.equal(limiter.size, 0);
  assert.equal(limiter.previousWasPeak, true);
  // In the new window, going over base straight after a peak pauses the socket.
  assert.equal(limiter.account(60, 1200 * MS), null);
  const t = limiter.account(60, 1300 * MS);
  assert.equal(t?.reason, "after-peak");
  assert.equal(t?.pauseUs, 800 * MS); // the window began at 1100 ms
});

Deno.test("thresholds are strict: exactly base and exactly peak pass", () => {
  const limiter = new RateLimiter("s", { base: 100, peak: 300, intervalUs: 1_000_000 }, 0);
  assert.equal(limiter.account(100, 0), null);
  assert.equal(limiter.account(200, 1), null); // 300 == peak
  assert.equal(limiter.account(1, 2)?.reason, "peak"); // 301 > peak
});

Deno.test("after a long idle spell the first message is counted into the stale window", () => {
  const limiter = new RateLimiter("s", { base: 100, peak: 300, intervalUs: 1_000_000 }, 0);
  assert.equal(limiter.account(60, 0), null);
  // 10 s later: 60 + 60 = 120 > base is seen before the window is closed, so
  // the stale window counts as a peak window...
  assert.equal(limiter.account(60, 10_000 * MS), null);
  assert.equal(limiter.previousWasPeak, true);
  // ...and the fresh window may not go over base.
  assert.equal(limiter.account(101, 10_100 * MS)?.reason, "after-peak");
});

Deno.test("a window that ends within base clears the peak mark", () => {
  const limiter = new RateLimiter("s", { base: 100, peak: 300, intervalUs: 1_000_000 }, 0);
  assert.equal(limiter.account(301, 0)?.pauseUs, 1_000_000);
  limiter.resume(1_000_000);
  assert.equal(limiter.previousWasPeak, true);
  assert.equal(limiter.account(50, 2_500_000), null); // within base, window over
  assert.equal(limiter.previousWasPeak, false);
  assert.equal(limiter.account(250, 2_600_000), null); // a new peak is allowed
});

Deno.test("a peak crossed after the window is over pauses for 0 and restarts at resume", () => {
  const limiter = new RateLimiter("s", { base: 100, peak: 300, intervalUs: 1_000_000 }, 0);
  const t = limiter.account(400, 3_000_000);
  assert.deepEqual([t?.reason, t?.pauseUs], ["peak", 0]);
  limiter.resume(3_000_001);
  assert.throws(() => limiter.resume(3_000_002), /resume without pause/);
  assert.equal(limiter.account(101, 3_500_000)?.reason, "after-peak");
});

Deno.test("account while paused is a programming error", () => {
  const limiter = new RateLimiter("s", { base: 100, peak: 300, intervalUs: 1_000_000 }, 0);
  limiter.account(301, 0);
  assert.throws(() => limiter.account(1, 1), /account while paused/);
});

Deno.test("clamps: jailkit's ranges and defaults, with notices", () => {
  const cases: [number, number, number, [number, number, number], string[]][] = [
    [100, 300, 2, [100, 300, 2_000_000], []],
    // a base replaced by 511 is above peak 300, so peak is replaced too
    [9, 300, 2, [511, 2048, 2_000_000], ["base", "peak"]],
    [1_000_001, 300, 2, [511, 2048, 2_000_000], ["base", "peak"]],
    [-5, 600, 2, [511, 600, 2_000_000], ["base"]],
    [100, 99, 2, [100, 2048, 2_000_000], ["peak"]],
    [100, 10_000_001, 2, [100, 2048, 2_000_000], ["peak"]],
    [500, 400, 2, [500, 2048, 2_000_000], ["peak"]], // peak < base
    // base > 2048 with a bad peak: peak becomes 2048, below base (jailkit's quirk)
    [5000, 50, 2, [5000, 2048, 2_000_000], ["peak"]],
    [100, 300, 60, [100, 300, 60_000_000], []],
    [100, 300, 60.5, [100, 300, 5_000_000], ["interval"]],
    [100, 300, 0, [100, 300, 5_000_000], ["interval"]],
    [100, 300, NaN, [100, 300, 5_000_000], ["interval"]],
    // single precision, as jailkit's `float`: 0.01 is 0.00999999977...
    [100, 300, 0.01, [100, 300, 5_000_000], ["interval"]],
    [100, 300, 0.02, [100, 300, 19_999], []],
    [100, 300, 0.7, [100, 300, 699_999], []],
  ];
  for (const [base, peak, interval, want, notices] of cases) {
    const got = clampLimits(base, peak, interval);
    const { limits } = got;
    assert.deepEqual(
      [limits.base, limits.peak, limits.intervalUs],
      want,
      `${base}/${peak}/${interval}`,
    );
    assert.deepEqual(got.notices.map((n) => n.key), notices, `${base}/${peak}/${interval}`);
  }
  assert.equal(clampLimits(100, 300, 0.02).intervalSeconds.toFixed(6), "0.020000");
});

Deno.test("rates in warnings are whole bytes per second, rounded down", () => {
  assert.equal(bytesPerSecond(300, 2_000_000), 150);
  assert.equal(bytesPerSecond(2048, 5_000_000), 409);
  assert.equal(bytesPerSecond(100, 699_999), 142);
});
