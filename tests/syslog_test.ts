/**
 * Tests of src/syslog.ts with real AF_UNIX datagram sockets. Run with
 * `deno test --no-config -A --unstable-net tests/syslog_test.ts` (the listener
 * and the Deno transport need --unstable-net). Tests that chroot, drop
 * privileges or mount run in child processes and need root.
 */

import assert from "node:assert/strict";
import { libcPath } from "../src/libc.ts";
import {
  DenoTransport,
  FfiTransport,
  formatDatagram,
  formatTimestamp,
  LOG_AUTH,
  LOG_DAEMON,
  LOG_ERR,
  LOG_INFO,
  LOG_NOTICE,
  LOG_WARNING,
  MAX_DATAGRAM,
  openLog,
  sanitize,
  type Severity,
} from "../src/syslog.ts";
import { runDenoScript, type RunResult, scratchDir } from "./harness.ts";

const SYSLOG = new URL("../src/syslog.ts", import.meta.url).href;
const LIBC = new URL("../src/libc.ts", import.meta.url).href;
const isRoot = Deno.uid() === 0;
const decoder = new TextDecoder();

/** A fixed clock: 5 November 2026, 09:03:07 local time. */
const FIXED = () => new Date(2026, 10, 5, 9, 3, 7);

/** Jailkit's priorities as observed on the wire (behaviour notes §0.4). */
const JAILKIT_PRIORITIES: [number, Severity, number][] = [
  [LOG_AUTH, LOG_INFO, 38],
  [LOG_AUTH, LOG_NOTICE, 37],
  [LOG_AUTH, LOG_WARNING, 36],
  [LOG_AUTH, LOG_ERR, 35],
  [LOG_DAEMON, LOG_NOTICE, 29],
  [LOG_DAEMON, LOG_WARNING, 28],
  [LOG_DAEMON, LOG_ERR, 27],
];

/** A listening log socket in a fresh root-owned directory under /var/lib. */
interface Daemon {
  dir: string;
  path: string;
  conn: Deno.DatagramConn;
  /** The next datagram (up to `room` bytes), as text; rejects after 5 s. */
  next(room?: number): Promise<string>;
  /** Sends a marker from this process and checks it is the next datagram: nothing else came. */
  expectNothingMore(): Promise<void>;
  close(): Promise<void>;
}

/** The next datagram on `conn` as text; rejects after 5 s, so a lost one fails, not hangs. */
async function receiveText(conn: Deno.DatagramConn, path: string, room = 1 << 20) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const receive = conn.receive(new Uint8Array(room));
  receive.catch(() => {}); // after a timeout, closing the socket rejects it
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no datagram at ${path} within 5 s`)), 5000);
  });
  try {
    const [data] = await Promise.race([receive, timeout]);
    return decoder.decode(data);
  } finally {
    clearTimeout(timer);
  }
}

async function startDaemon(): Promise<Daemon> {
  const dir = await scratchDir("syslog");
  const path = `${dir}/log`;
  const conn = Deno.listenDatagram({ transport: "unixpacket", path });
  await Deno.chmod(path, 0o666);
  const next = (room = 1 << 20) => receiveText(conn, path, room);
  return {
    dir,
    path,
    conn,
    next,
    async expectNothingMore() {
      const marker = `marker ${crypto.randomUUID()}`;
      const transport = new FfiTransport(path);
      transport.send(new TextEncoder().encode(marker));
      transport.close();
      assert.equal(await next(), marker);
    },
    async close() {
      conn.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Runs `source` (with `S` = syslog.ts, `L` = libc.ts) in a child `deno run` with `flags`. */
function runChild(source: string, flags: string[], wrapper: string[] = []): Promise<RunResult> {
  return runDenoScript(
    `import * as S from "${SYSLOG}";\nimport * as L from "${LIBC}";\n${source}`,
    { flags, wrapper },
  );
}

Deno.test("datagram format: priority, space-padded day, local time, ident[pid]", () => {
  assert.equal(formatTimestamp(new Date(2026, 10, 5, 9, 3, 7)), "Nov  5 09:03:07");
  assert.equal(formatTimestamp(new Date(2026, 0, 31, 23, 59, 0)), "Jan 31 23:59:00");
  for (const [facility, severity, priority] of JAILKIT_PRIORITIES) {
    const bytes = formatDatagram({
      facility,
      severity,
      ident: "jk_lsh",
      pid: 4242,
      message: "jk_lsh version 2.23, started",
      date: FIXED(),
    });
    assert.equal(
      decoder.decode(bytes),
      `<${priority}>Nov  5 09:03:07 jk_lsh[4242]: jk_lsh version 2.23, started`,
    );
  }
});

Deno.test("sanitize escapes every control and line-breaking character, nothing else", () => {
  assert.equal(sanitize("a\nb\rc\0d\te\x1bf\x7fg"), "a#012b#015c#000d#011e#033f#177g");
  assert.equal(sanitize("nel\u0085ls\u2028ps\u2029"), "nel#205ls#20050ps#20051");
  assert.equal(sanitize("user é ✓ [x]: 100%"), "user é ✓ [x]: 100%");
});

Deno.test("both transports deliver exactly the expected bytes for jailkit's priorities", async () => {
  const daemon = await startDaemon();
  const ffi = openLog("jk_chrootsh", LOG_AUTH, new FfiTransport(daemon.path), {
    pid: 77,
    now: FIXED,
  });
  try {
    for (const [facility, severity, priority] of JAILKIT_PRIORITIES) {
      const expected = `<${priority}>Nov  5 09:03:07 jk_tool[77]: message ${priority}`;
      const viaFfi = openLog("jk_tool", facility, new FfiTransport(daemon.path), {
        pid: 77,
        now: FIXED,
      });
      viaFfi.log(severity, `message ${priority}`);
      viaFfi.close();
      assert.equal(await daemon.next(), expected);
      const viaDeno = openLog("jk_tool", facility, new DenoTransport(daemon.path), {
        pid: 77,
        now: FIXED,
      });
      await viaDeno.log(severity, `message ${priority}`);
      await viaDeno.close();
      assert.equal(await daemon.next(), expected);
    }
    // The default pid is this process's, and the clock is the real one.
    const live = openLog("jk_lsh", LOG_AUTH, new FfiTransport(daemon.path));
    live.log(LOG_INFO, "live");
    live.close();
    assert.equal(
      await daemon.next(),
      `<38>${formatTimestamp(new Date())} jk_lsh[${Deno.pid}]: live`,
    );
    await daemon.expectNothingMore();
  } finally {
    ffi.close();
    await daemon.close();
  }
});

Deno.test({
  name: "byte for byte what glibc syslog(3) sends, in a non-UTC time zone",
  ignore: !isRoot,
  async fn() {
    const daemon = await startDaemon();
    try {
      // glibc always writes to /dev/log: give the child a private /dev whose
      // log is a bind mount of our socket (the mount namespace dies with it).
      const shell = `mount -t tmpfs tmpfs /dev && mknod -m 666 /dev/null c 1 3 && ` +
        `touch /dev/log && mount --bind ${daemon.path} /dev/log && exec "$@"`;
      const out = await runChild(
        `
        const lib = Deno.dlopen(L.libcPath(), {
          openlog: { parameters: ["buffer", "i32", "i32"], result: "void" },
          syslog: { parameters: ["i32", "buffer", "buffer"], result: "void" },
        });
        const c = (s) => new TextEncoder().encode(s + "\\0");
        const ident = c("jk_chrootsh");
        lib.symbols.openlog(ident, 1 /* LOG_PID */, S.LOG_AUTH << 3);
        const ours = S.openLog("jk_chrootsh", S.LOG_AUTH, new S.FfiTransport("/dev/log"));
        const text = "now entering jail /srv/jail for user alice (1000)";
        lib.symbols.syslog(S.LOG_NOTICE, c("%s"), c(text));
        ours.log(S.LOG_NOTICE, text);
        lib.symbols.syslog(S.LOG_NOTICE, c("%s"), c(text));
        `,
        ["--allow-ffi"],
        [
          "env",
          "TZ=America/St_Johns",
          "unshare",
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          shell,
          "sh",
        ],
      );
      assert.equal(out.stderr, "");
      const [before, ours, after] = [await daemon.next(), await daemon.next(), await daemon.next()];
      assert.match(
        before,
        /^<37>\w{3} [ \d]\d \d\d:\d\d:\d\d jk_chrootsh\[\d+\]: now entering jail/,
      );
      // St John's is UTC-3:30: the minutes prove both used the zone, not UTC.
      const minutes = Number(/ \d\d:(\d\d):/.exec(before)![1]);
      assert.ok([29, 30, 31].includes((new Date().getUTCMinutes() - minutes + 60) % 60), before);
      // Ours was sent between two glibc ones: equal to one of them even across a second boundary.
      assert.ok(ours === before || ours === after, `${ours}\n${before}\n${after}`);
      await daemon.expectNothingMore();
    } finally {
      await daemon.close();
    }
  },
});

Deno.test("a newline in a message cannot forge a second log line", async () => {
  const daemon = await startDaemon();
  try {
    const forged = "bad login\nNov  5 09:03:08 host sshd[1]: Accepted password for root\r\0";
    const expected = "<38>Nov  5 09:03:07 jk_lsh[9]: bad login#012Nov  5 09:03:08 host " +
      "sshd[1]: Accepted password for root#015#000";
    const ffi = openLog("jk_lsh", LOG_AUTH, new FfiTransport(daemon.path), { pid: 9, now: FIXED });
    ffi.log(LOG_INFO, forged);
    ffi.close();
    const deno = openLog("jk_lsh", LOG_AUTH, new DenoTransport(daemon.path), {
      pid: 9,
      now: FIXED,
    });
    await deno.log(LOG_INFO, forged);
    await deno.close();
    for (let i = 0; i < 2; i++) {
      const got = await daemon.next();
      assert.equal(got, expected);
      assert.ok(!new TextEncoder().encode(got).some((b) => b < 0x20), "control byte on the wire");
    }
  } finally {
    await daemon.close();
  }
});

Deno.test("an overlong message is cut at a character boundary and still delivered", async () => {
  const daemon = await startDaemon();
  try {
    // 2 MB: more than a datagram socket's send buffer, so uncut it would fail with EMSGSIZE.
    const log = openLog("jk_lsh", LOG_AUTH, new FfiTransport(daemon.path), { pid: 1, now: FIXED });
    log.log(LOG_WARNING, "x" + "é".repeat(1024 * 1024));
    log.close();
    const text = await daemon.next(1 << 22);
    const data = new TextEncoder().encode(text);
    assert.ok(data.length <= MAX_DATAGRAM && data.length > MAX_DATAGRAM - 4, `${data.length}`);
    assert.ok(!text.includes("\uFFFD"), "a character was split"); // decoding is lossy
    assert.ok(text.startsWith("<36>Nov  5 09:03:07 jk_lsh[1]: x"), text.slice(0, 40));
    assert.match(text, /: xé+\.\.\.$/);
  } finally {
    await daemon.close();
  }
});

Deno.test("no socket, or no permission at all: logging is silent and never throws", async () => {
  const missing = `/var/lib/jktest-syslog-missing-${Deno.pid}/log`;
  const ffi = openLog("jk_lsh", LOG_AUTH, new FfiTransport(missing));
  ffi.log(LOG_ERR, "nobody listens");
  ffi.close();
  const deno = openLog("jk_lsh", LOG_AUTH, new DenoTransport(missing));
  await deno.log(LOG_ERR, "nobody listens");
  await deno.close();
  const source = `
    const ffi = S.openLog("jk_lsh", S.LOG_AUTH, new S.FfiTransport(${JSON.stringify(missing)}));
    console.log(ffi.transport.connect());
    ffi.log(S.LOG_ERR, "nobody listens");
    const deno = S.openLog("jk_lsh", S.LOG_AUTH, new S.DenoTransport(${JSON.stringify(missing)}));
    await deno.log(S.LOG_ERR, "nobody listens");
    await deno.close();
  `;
  for (const flags of [[], ["--unstable-net", "--allow-all"]]) {
    const out = await runChild(source, flags);
    assert.deepEqual(
      out,
      { code: 0, signal: null, stdout: "false\n", stderr: "" },
      flags.join(" "),
    );
  }
});

Deno.test("each transport works with exactly its documented permissions", async () => {
  const daemon = await startDaemon();
  try {
    const p = daemon.path;
    const viaFfi = `S.openLog("ffi", S.LOG_AUTH, new S.FfiTransport(${JSON.stringify(p)}))
      .log(S.LOG_INFO, "via ffi");`;
    const viaDeno = `await S.openLog("deno", S.LOG_AUTH, new S.DenoTransport(${JSON.stringify(p)}))
      .log(S.LOG_INFO, "via deno");`;
    assert.equal((await runChild(viaFfi, ["--allow-ffi"])).stderr, "");
    assert.match(await daemon.next(), /ffi\[\d+\]: via ffi$/);
    const denoFlags = ["--unstable-net", `--allow-net=unix:${p}`, `--allow-write=${p}`];
    assert.equal((await runChild(viaDeno, denoFlags)).stderr, "");
    assert.match(await daemon.next(), /deno\[\d+\]: via deno$/);
    // One permission short: dropped, silently.
    const short = await runChild(viaDeno, ["--unstable-net", `--allow-net=unix:${p}`]);
    assert.deepEqual([short.code, short.stderr], [0, ""]);
    const noFfi = await runChild(viaFfi, [`--allow-ffi=${libcPath()}`]); // scoped is not enough
    assert.deepEqual([noFfi.code, noFfi.stderr], [0, ""]);
    await daemon.expectNothingMore();
  } finally {
    await daemon.close();
  }
});

Deno.test({
  name: "the FFI transport connects before chroot and keeps sending after chroot and setresuid",
  ignore: !isRoot,
  async fn() {
    const daemon = await startDaemon();
    const jail = await Deno.makeTempDir({ dir: "/var/lib", prefix: "jktest-syslog-jail-" });
    try {
      const out = await runChild(
        `
        const transport = new S.FfiTransport(${JSON.stringify(daemon.path)});
        const log = S.openLog("jk_chrootsh", S.LOG_AUTH, transport);
        console.log(transport.connect());
        L.chroot(${JSON.stringify(jail)});
        L.chdir("/");
        L.setgroups([]);
        L.setresgid(65534, 65534, 65534);
        L.setresuid(65534, 65534, 65534);
        log.log(S.LOG_INFO, "inside the jail as nobody");
        const fd = transport.fd;
        transport.close();
        let state = "open";
        try { L.fstat(fd); } catch (e) { state = e.code; }
        console.log(state, transport.fd);
        log.log(S.LOG_INFO, "after close: the jail has no /dev/log, so this is dropped");
        `,
        ["--allow-ffi"],
      );
      assert.deepEqual(out, { code: 0, signal: null, stdout: "true\nEBADF null\n", stderr: "" });
      assert.match(await daemon.next(), /^<38>.* jk_chrootsh\[\d+\]: inside the jail as nobody$/);
      await daemon.expectNothingMore();
    } finally {
      await Deno.remove(jail, { recursive: true });
      await daemon.close();
    }
  },
});

Deno.test("the FFI transport reconnects once when the daemon restarts", async () => {
  const first = await startDaemon();
  const transport = new FfiTransport(first.path);
  const log = openLog("jk_lsh", LOG_AUTH, transport, { pid: 3, now: FIXED });
  try {
    log.log(LOG_INFO, "one");
    assert.match(await first.next(), /: one$/);
    const fdBefore = transport.fd;
    first.conn.close();
    await Deno.remove(first.path);
    const second = Deno.listenDatagram({ transport: "unixpacket", path: first.path });
    try {
      log.log(LOG_INFO, "two");
      assert.match(await receiveText(second, first.path), /: two$/);
      assert.notEqual(transport.fd, null);
      assert.ok(fdBefore !== null);
    } finally {
      second.close();
    }
  } finally {
    log.close();
    await Deno.remove(first.dir, { recursive: true });
  }
});

Deno.test("a daemon that stops reading cannot hang a tool", async () => {
  const daemon = await startDaemon();
  try {
    const started = performance.now();
    const ffi = openLog("jk_lsh", LOG_AUTH, new FfiTransport(daemon.path));
    for (let i = 0; i < 200; i++) ffi.log(LOG_INFO, `flood ${i}`); // queue holds ~10: the rest drop
    ffi.close();
    const deno = openLog("jk_lsh", LOG_AUTH, new DenoTransport(daemon.path, 100));
    for (let i = 0; i < 5; i++) await deno.log(LOG_INFO, `stuck ${i}`); // each gives up in 100 ms
    await deno.close();
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 3000, `took ${elapsed} ms`);
    assert.ok(elapsed >= 400, `the Deno sends should have waited for their timeout: ${elapsed} ms`);
    assert.match(await daemon.next(), /: flood 0$/); // what fitted was delivered, in order
  } finally {
    await daemon.close();
  }
});
