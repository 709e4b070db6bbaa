/**
 * Benchmark: messages per second relayed by jk_socketd with its limits out of
 * the way (base 1 000 000 bytes per 0.02 s window, peak 10 000 000), against
 * the same sender writing straight to the same receiver (the reference: what
 * the machine does without a relay), in the same run. Goal: ≥ 20,000/s.
 *
 * The sender is this process (blocking datagram sends, 100-byte syslog
 * lines, so it is paced by the relay's socket queue); the receiver is a copy
 * of this script in a second process bound at the "host log socket" path.
 * The receiver times from the first to the last message of a round; a round
 * ends with a STOP message. Rounds alternate reference / relay; medians and
 * their ratio are printed, and any message lost counts.
 *
 * `deno task bench jk_socketd`, or `... tests/bench/jk_socketd.ts [MESSAGES] [ROUNDS]`.
 *
 * @module
 */

import {
  AF_UNIX,
  bindUnix,
  close,
  connectUnix,
  MessageReceiver,
  send,
  SOCK_DGRAM,
  socket,
} from "../../src/libc.ts";
import { scratchDir, toolPathUnderTest } from "../harness.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Receiver mode: `receiver PATH` — counts rounds, prints "COUNT MS" per round. */
function receiver(path: string): never {
  const fd = socket(AF_UNIX, SOCK_DGRAM);
  bindUnix(fd, path);
  const r = new MessageReceiver({ capacity: 16384 });
  console.log("ready");
  for (;;) {
    let count = 0, first = 0, last = 0;
    for (;;) {
      const m = r.receive(fd)!;
      const text = decoder.decode(m.data);
      if (text.includes("STOP")) break;
      if (text.includes("QUIT")) Deno.exit(0);
      if (!text.includes("bench message")) continue; // the daemon's own notices
      last = performance.now();
      if (count === 0) first = last;
      count++;
    }
    console.log(`${count} ${last - first}`);
  }
}

if (Deno.args[0] === "receiver") receiver(Deno.args[1]);

const MESSAGES = Number(Deno.args[0] ?? 50_000);
const ROUNDS = Number(Deno.args[1] ?? 3);

/** Sends MESSAGES lines of 100 bytes, then STOP, to `path`. */
function sendRound(path: string): void {
  const fd = socket(AF_UNIX, SOCK_DGRAM);
  try {
    connectUnix(fd, path);
    for (let i = 0; i < MESSAGES; i++) {
      const line = `<13>Nov 29 09:13:01 bench[1]: bench message ${String(i).padStart(8, "0")} `;
      send(fd, encoder.encode(line.padEnd(100, "x")));
    }
    send(fd, encoder.encode("<13>STOP"));
  } finally {
    close(fd);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const dir = await scratchDir("bench-socketd");
await Deno.mkdir(`${dir}/jail/dev`, { recursive: true });
const upstream = `${dir}/host-log`, relaySocket = `${dir}/jail/dev/log`;

const recv = new Deno.Command(Deno.execPath(), {
  args: ["run", "--no-config", "-A", new URL(import.meta.url).pathname, "receiver", upstream],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const lines = recv.stdout.pipeThrough(new TextDecoderStream()).getReader();
let buffered = "";
async function nextLine(): Promise<string> {
  for (;;) {
    const at = buffered.indexOf("\n");
    if (at >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      return line;
    }
    const { value, done } = await lines.read();
    if (done) throw new Error("receiver ended");
    buffered += value;
  }
}

const daemon = new Deno.Command(await toolPathUnderTest("jk_socketd"), {
  args: [
    "-n",
    `--socket=${relaySocket}`,
    `--log-socket=${upstream}`,
    "--base=1000000",
    "--peak=10000000",
    "--interval=0.02",
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const daemonOut = daemon.stdout.pipeThrough(new TextDecoderStream()).getReader();

try {
  await nextLine(); // receiver ready
  for (let seen = ""; !/relaying as nobody/.test(seen);) {
    const { value, done } = await daemonOut.read();
    if (done) throw new Error(`jk_socketd ended before it was ready:\n${seen}`);
    seen += value;
  }
  daemonOut.releaseLock();
  daemon.stdout.cancel().catch(() => {});

  const rates: Record<"direct" | "relay", number[]> = { direct: [], relay: [] };
  let lost = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const [kind, path] of [["direct", upstream], ["relay", relaySocket]] as const) {
      sendRound(path);
      const [count, ms] = (await nextLine()).split(" ").map(Number);
      lost += MESSAGES - count;
      rates[kind].push(count / (ms / 1000));
    }
  }
  const direct = median(rates.direct), relay = median(rates.relay);
  console.log(`jk_socketd relay, ${MESSAGES} messages of 100 bytes x ${ROUNDS} rounds (medians)`);
  console.log(
    `  direct to the receiver (reference): ${Math.round(direct).toLocaleString("en")} msg/s`,
  );
  console.log(
    `  through jk_socketd:                 ${Math.round(relay).toLocaleString("en")} msg/s`,
  );
  console.log(
    `  ratio relay/direct: ${(relay / direct).toFixed(2)}; goal >= 20,000 msg/s: ${
      relay >= 20_000 ? "met" : "NOT met"
    }`,
  );
  if (lost) console.log(`  messages lost: ${lost}`);
} finally {
  daemon.kill("SIGTERM");
  await daemon.status;
  const quit = socket(AF_UNIX, SOCK_DGRAM);
  try {
    connectUnix(quit, upstream);
    send(quit, encoder.encode("QUIT"));
  } catch {
    recv.kill("SIGKILL");
  } finally {
    close(quit);
  }
  await recv.status;
  await Deno.remove(dir, { recursive: true });
}
