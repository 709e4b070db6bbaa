/**
 * jk_socketd, installed and run as root: real sockets in a real jail, a real
 * jailed client (util-linux `logger`, chrooted as a test user), and a real
 * datagram listener standing in for the host's /dev/log.
 */
import assert from "node:assert/strict";
import {
  jailOf,
  type Origin,
  parseOptions,
  relayedDatagram,
  socketPathProblem,
} from "../src/jk_socketd.ts";
import { AF_UNIX, close, connectUnix, send, sendWithFd, SOCK_DGRAM, socket } from "../src/libc.ts";
import { libDir } from "../src/site.ts";
import {
  copyWithLibs,
  createUser,
  DatagramListener,
  firstChildPid,
  Lines,
  procStatus,
  runCommand,
  runTool,
  scratchDir,
  spawnCommand,
  testSite,
  toolPathUnderTest,
} from "./harness.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A running `jk_socketd -n`. */
interface Daemon {
  child: Deno.ChildProcess;
  stdout: Lines;
  stderr: Lines;
  /** Resolves to the exit status once it ended. */
  ended: Promise<Deno.CommandStatus>;
}

async function spawnDaemon(args: string[]): Promise<Daemon> {
  const child = spawnCommand(await toolPathUnderTest("jk_socketd"), args);
  const stdout = new Lines(), stderr = new Lines();
  const streams = Promise.all([stdout.collect(child.stdout), stderr.collect(child.stderr)]);
  const ended = streams.then(() => child.status);
  return { child, stdout, stderr, ended };
}

/** Starts `jk_socketd -n ARGS` and waits until the relay runs as nobody. */
async function startDaemon(args: string[]): Promise<Daemon> {
  const daemon = await spawnDaemon(["-n", ...args]);
  try {
    await daemon.stdout.waitFor(/relaying as nobody/);
  } catch (e) {
    daemon.child.kill("SIGKILL");
    await daemon.ended;
    throw new Error(`${e}\nstderr: ${daemon.stderr.lines.join("\n")}`);
  }
  return daemon;
}

async function stopDaemon(daemon: Daemon): Promise<Deno.CommandStatus> {
  try {
    daemon.child.kill("SIGTERM");
  } catch {
    // already gone
  }
  return await daemon.ended;
}

/**
 * Runs `fn` with a host log listening at `upstream` and `jk_socketd -n ARGS`
 * relaying to it; afterwards the daemon must stop on SIGTERM with status 0.
 */
async function withRelay(
  upstream: string,
  args: string[],
  fn: (daemon: Daemon, host: DatagramListener) => Promise<void>,
): Promise<void> {
  const host = new DatagramListener(upstream);
  try {
    const daemon = await startDaemon([`--log-socket=${upstream}`, ...args]);
    try {
      await fn(daemon, host);
    } finally {
      const end = await stopDaemon(daemon);
      assert.equal(end.code, 0, daemon.stderr.lines.join("\n"));
    }
  } finally {
    await host.close();
  }
}

/** Processes running this install's jk_socketd. */
async function daemonProcesses(): Promise<string> {
  const site = await testSite();
  const r = await runCommand("pgrep", ["-af", `${libDir(site)}/src/jk_socketd.ts`]);
  return r.stdout.trim();
}

/** Sends one datagram to a socket path from this (root) process. */
function sendDatagram(path: string, data: Uint8Array): void {
  const fd = socket(AF_UNIX, SOCK_DGRAM);
  try {
    connectUnix(fd, path);
    send(fd, data);
  } finally {
    close(fd);
  }
}

/** A jail with dev/ and util-linux logger, and a scratch area for the log listener. */
async function withJail(
  fn: (ctx: { jail: string; socketPath: string; upstream: string; dir: string }) => Promise<void>,
): Promise<void> {
  const dir = await scratchDir("socketd");
  try {
    const jail = `${dir}/jail`;
    await Deno.mkdir(`${jail}/dev`, { recursive: true });
    await copyWithLibs(jail, ["/usr/bin/logger"]);
    await fn({ jail, socketPath: `${jail}/dev/log`, upstream: `${dir}/host-log`, dir });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs util-linux logger inside the jail as `user`, reading messages from stdin. */
function jailedLogger(jail: string, uid: number, gid: number, tag: string, stdin: string) {
  return runCommand("chroot", [
    `--userspec=${uid}:${gid}`,
    jail,
    "/usr/bin/logger",
    "-i",
    "-t",
    tag,
    "-u",
    "/dev/log",
  ], { stdin });
}

// ---------------------------------------------------------------------------
// Pure parts

Deno.test("relayed datagrams: attributed, priority kept (kern becomes user), one line", () => {
  const when = new Date(2026, 10, 29, 9, 13, 2);
  const origin: Origin = {
    jail: "/srv/j",
    credentials: { pid: 42, uid: 1001, gid: 1001 },
    truncated: false,
  };
  const relay = (text: string, o = origin) =>
    decoder.decode(relayedDatagram(encoder.encode(text), o, 812, when));
  assert.equal(
    relay("<38>Nov 29 09:13:01 sshd[7]: hi\n"),
    "<38>Nov 29 09:13:02 jk_socketd[812]: jail=/srv/j uid=1001 pid=42: sshd[7]: hi",
  );
  // A forged second line stays inside the first.
  assert.equal(
    relay("<38>x: a\n<34>Nov 29 09:13:01 sshd[1]: Accepted password for root"),
    "<38>Nov 29 09:13:02 jk_socketd[812]: jail=/srv/j uid=1001 pid=42: " +
      "x: a#012<34>Nov 29 09:13:01 sshd[1]: Accepted password for root",
  );
  assert.match(relay("<0>kernel: panic"), /^<8>.*: kernel: panic$/); // kern.emerg -> user.emerg
  assert.match(relay("<191>x"), /^<191>/);
  assert.match(relay("<192>x"), /^<13>.*: <192>x$/); // not a priority: user.notice, text kept
  assert.match(relay("no header\0"), /^<13>.*pid=42: no header$/);
  assert.match(relay("a\x1b[2Jb\u2028c"), /: a#033\[2Jb#20050c$/);
  assert.match(relay("x", { ...origin, credentials: null }), /uid=\? pid=\?: x$/);
  assert.match(relay("x", { ...origin, truncated: true }), /: x\.\.\.$/);
  const long = relay("<13>" + "é".repeat(5000));
  assert.ok(encoder.encode(long).length < 8192 + 100);
  assert.match(long, /é\.\.\.$/);
});

Deno.test("socket paths, jails and the command line", () => {
  assert.equal(socketPathProblem("/srv/j/dev/log"), null);
  assert.match(socketPathProblem("srv/dev/log")!, /absolute/);
  assert.match(socketPathProblem("/srv/../dev/log")!, /canonical/);
  assert.match(socketPathProblem("/srv/dev/")!, /canonical/);
  assert.match(socketPathProblem("/srv/" + "x".repeat(108))!, /107/);
  assert.equal(jailOf("/srv/j/dev/log"), "/srv/j");
  assert.equal(jailOf("/dev/log"), "/");
  assert.equal(jailOf("/run/x.sock"), "/run");
  const o = parseOptions(["-n", "--socket=/s/log", "--base=5", "--peek", "300"])!;
  assert.deepEqual(o.socket?.limits, { base: 511, peak: 2048, intervalUs: 10_000_000 });
  assert.deepEqual(o.notices, [
    "socket /s/log: base 5 is out of range, using 511",
    "socket /s/log: peak 300 is out of range, using 2048",
  ]);
  assert.equal(parseOptions(["-h"]), null);
  assert.throws(() => parseOptions(["--base=10"]), /apply to --socket only/);
  assert.throws(() => parseOptions(["--socket=/s/log", "--base=1x"]), /not a number/);
  assert.throws(() => parseOptions(["--bogus"]), (e: Error & { exitCode?: number }) => {
    return e.exitCode === 2;
  });
  assert.throws(() => parseOptions(["-p", "run/x.pid"]), /absolute/);
});

// ---------------------------------------------------------------------------
// The daemon

Deno.test("relays a jailed user's messages with kernel-verified attribution, as nobody", async () => {
  const user = await createUser();
  try {
    await withJail(async ({ jail, socketPath, upstream }) => {
      await withRelay(upstream, [`--socket=${socketPath}`], async (daemon, host) => {
        const info = await Deno.lstat(socketPath);
        assert.ok(info.isSocket);
        assert.equal(info.mode! & 0o777, 0o666);
        assert.equal(info.uid, 0);

        const r = await jailedLogger(jail, user.uid, user.gid, "probe", "hello from the jail\n");
        assert.equal(r.code, 0, r.stderr);
        const line = await host.waitFor(/hello from the jail/);
        // logger puts its own pid in its tag: the kernel's pid must be the same.
        const m = line.match(
          /^<13>\w{3} [ \d]\d \d\d:\d\d:\d\d jk_socketd\[(\d+)\]: jail=(\S+) uid=(\d+) pid=(\d+): probe\[(\d+)\]: hello from the jail$/,
        );
        assert.ok(m, line);
        assert.equal(m[2], jail);
        assert.equal(Number(m[3]), user.uid);
        assert.equal(m[4], m[5]);

        // The relay: nobody, nobody's groups only, no_new_privs, no capabilities,
        // chrooted into the empty directory.
        const relay = firstChildPid(daemon.child.pid);
        assert.equal(Number(m[1]), relay);
        const s = procStatus(relay);
        assert.equal(s.Uid, "65534\t65534\t65534\t65534");
        assert.equal(s.Gid, "65534\t65534\t65534\t65534");
        assert.equal(s.Groups, "65534");
        assert.equal(s.NoNewPrivs, "1");
        assert.equal(s.CapEff, "0000000000000000");
        assert.equal(s.CapPrm, "0000000000000000");
        const site = await testSite();
        assert.equal(await Deno.readLink(`/proc/${relay}/root`), `${libDir(site)}/empty`);
        // No writable handle on a file outside: only sockets, pipes, /dev/null, runtime fds.
        for (const fd of Deno.readDirSync(`/proc/${relay}/fd`)) {
          const target = await Deno.readLink(`/proc/${relay}/fd/${fd.name}`).catch(() => "");
          assert.match(target, /^(socket|pipe|anon_inode):|^\/dev\/null$/, `fd ${fd.name}`);
        }
      });
      // SIGTERM removed the socket, and no process is left.
      await assert.rejects(Deno.lstat(socketPath), Deno.errors.NotFound);
      assert.equal(await daemonProcesses(), "");
    });
  } finally {
    await user.remove();
  }
});

Deno.test("forged lines, 8 KiB messages and passed descriptors are handled", async () => {
  await withJail(async ({ socketPath, upstream }) => {
    const args = [
      `--socket=${socketPath}`,
      "--base=1000000", // limits out of the way: 8 KiB messages would cross the default peak
      "--peak=10000000",
    ];
    await withRelay(upstream, args, async (daemon, host) => {
      const relay = firstChildPid(daemon.child.pid);
      const fdsBefore = [...Deno.readDirSync(`/proc/${relay}/fd`)].length;
      sendDatagram(
        socketPath,
        encoder.encode(
          "<38>Nov 29 09:13:01 sshd[1]: Failed password\n<38>Nov 29 09:13:01 sshd[1]: " +
            "Accepted password for root from 10.0.0.1\r\n",
        ),
      );
      sendDatagram(socketPath, encoder.encode("<0>kernel: fake oops"));
      const big = "B".repeat(8192 - 4);
      sendDatagram(socketPath, encoder.encode(`<13>${big}`));
      sendDatagram(socketPath, encoder.encode(`<13>${"C".repeat(9000)}`));
      // A client passes descriptors along: they must not land in the relay.
      const sender = socket(AF_UNIX, SOCK_DGRAM);
      connectUnix(sender, socketPath);
      for (let i = 0; i < 20; i++) sendWithFd(sender, encoder.encode(`<13>fd ${i}`), 0);
      close(sender);

      const forged = await host.waitFor(/Failed password/);
      assert.match(forged, /^<38>.* jk_socketd\[\d+\]: jail=\S+ uid=0 pid=\d+: sshd\[1\]: /);
      assert.match(forged, /Failed password#012<38>Nov 29 09:13:01 sshd\[1\]: Accepted/);
      assert.ok(!forged.includes("\n") && !forged.includes("\r"));
      assert.match(await host.waitFor(/fake oops/), /^<8>/);
      assert.ok((await host.waitFor(/BBBB/)).endsWith(`: ${big}`));
      const cut = await host.waitFor(/CCCC/);
      assert.ok(cut.endsWith(`: ${"C".repeat(8188)}...`));
      await host.waitFor(/: fd 19$/);
      assert.equal([...Deno.readDirSync(`/proc/${relay}/fd`)].length, fdsBefore);
    });
  });
});

Deno.test("a flood from inside a jail is held to the configured rate; the daemon stays up", async () => {
  const user = await createUser();
  try {
    await withJail(async ({ jail, socketPath, upstream }) => {
      const args = [`--socket=${socketPath}`, "--base=300", "--peak=600", "--interval=1"];
      await withRelay(upstream, args, async (_daemon, host) => {
        // `yes` feeds logger as fast as it can send for 3 seconds.
        const started = Date.now();
        const flood = await runCommand("sh", [
          "-c",
          `yes 'flood flood flood flood flood flood flood flood' | timeout -s KILL 3 chroot ` +
          `--userspec=${user.uid}:${user.gid} ${jail} /usr/bin/logger -t flood -u /dev/log`,
        ]);
        const seconds = (Date.now() - started) / 1000;
        assert.equal(flood.code, 137, flood.stderr); // killed by timeout: it was held up
        const relayed = host.matching(/: flood: flood flood/).length;
        // Each message is over 50 bytes: at most peak + base per further second,
        // plus the one message that crosses each limit.
        const windows = Math.ceil(seconds) + 1;
        const bound = Math.ceil((600 + 300 * windows) / 50) + windows;
        assert.ok(relayed >= 5 && relayed <= bound, `${relayed} relayed, bound ${bound}`);
        await host.waitFor(/is over the peak limit \(600 bytes\/s\)/);
        // Still up: after the window, a new message goes through.
        await new Promise((r) => setTimeout(r, 1200));
        const after = await jailedLogger(jail, user.uid, user.gid, "after", "still here\n");
        assert.equal(after.code, 0, after.stderr);
        await host.waitFor(/after\[\d+\]: still here/, 5000);
      });
    });
  } finally {
    await user.remove();
  }
});

Deno.test("if the relay dies, the monitor removes the sockets and exits 1", async () => {
  await withJail(async ({ socketPath, upstream }) => {
    const host = new DatagramListener(upstream);
    try {
      const daemon = await startDaemon([`--socket=${socketPath}`, `--log-socket=${upstream}`]);
      Deno.kill(firstChildPid(daemon.child.pid), "SIGKILL");
      const end = await daemon.ended;
      assert.equal(end.code, 1);
      await daemon.stdout.waitFor(/the relay ended unexpectedly/);
      await assert.rejects(Deno.lstat(socketPath), Deno.errors.NotFound);
      assert.equal(await daemonProcesses(), "");
    } finally {
      await host.close();
    }
  });
});

Deno.test("reconnects to the log socket after the syslog daemon restarts", async () => {
  await withJail(async ({ socketPath, upstream }) => {
    let host = new DatagramListener(upstream);
    const daemon = await startDaemon([`--socket=${socketPath}`, `--log-socket=${upstream}`]);
    try {
      sendDatagram(socketPath, encoder.encode("<13>before restart"));
      await host.waitFor(/before restart/);
      // Restart: the old socket goes away, a new one appears at the same path.
      await host.close();
      host = new DatagramListener(upstream);
      sendDatagram(socketPath, encoder.encode("<13>right after restart"));
      await host.waitFor(/right after restart/, 5000);
      // Down for a while: that message is lost and counted, later ones arrive.
      await host.close();
      sendDatagram(socketPath, encoder.encode("<13>while down"));
      await new Promise((r) => setTimeout(r, 300));
      host = new DatagramListener(upstream);
      await new Promise((r) => setTimeout(r, 1100));
      sendDatagram(socketPath, encoder.encode("<13>back again"));
      await host.waitFor(/back again/, 5000);
      await host.waitFor(/<26>.*failed to write 1 log message\(s\)/, 5000);
      assert.equal(host.matching(/while down/).length, 0);
    } finally {
      assert.equal((await stopDaemon(daemon)).code, 0);
      await host.close();
    }
  });
});

Deno.test("ini mode: every section a socket, clamp notices, pidfile written and removed", async () => {
  const site = await testSite();
  const iniFile = `${site.sysconfdir}/jk_socketd.ini`;
  const original = await Deno.readTextFile(iniFile);
  try {
    await withJail(async ({ dir, socketPath, upstream }) => {
      await Deno.mkdir(`${dir}/other/dev`, { recursive: true });
      const second = `${dir}/other/dev/log`;
      await Deno.writeTextFile(
        iniFile,
        `[${socketPath}]\nbase = 100\npeak = 300\ninterval = 2\n\n[${second}]\nbase = 5\n`,
      );
      const pidfile = `${dir}/jk_socketd.pid`;
      await withRelay(upstream, ["-p", pidfile], async (daemon, host) => {
        assert.equal(await Deno.readTextFile(pidfile), String(daemon.child.pid));
        await daemon.stdout.waitFor(
          new RegExp(`listening on socket ${socketPath} with rates \\[100:300\\]/2\\.000000`),
        );
        await host.waitFor(/<29>.*: socket .*other\/dev\/log: base 5 is out of range/);
        sendDatagram(second, encoder.encode("<13>to the second"));
        assert.match(
          await host.waitFor(/to the second/),
          new RegExp(`jail=${dir}/other uid=0`),
        );
      });
      for (const gone of [socketPath, second, pidfile]) {
        await assert.rejects(Deno.lstat(gone), Deno.errors.NotFound, gone);
      }
    });
  } finally {
    await Deno.writeTextFile(iniFile, original);
  }
});

Deno.test("without -n it detaches: returns 0 once ready, the daemon runs in its own session", async () => {
  await withJail(async ({ dir, socketPath, upstream }) => {
    const host = new DatagramListener(upstream);
    const pidfile = `${dir}/d.pid`;
    try {
      const r = await runTool("jk_socketd", [
        `--socket=${socketPath}`,
        `--log-socket=${upstream}`,
        `--pidfile=${pidfile}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const pid = Number(await Deno.readTextFile(pidfile));
      const stat = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1].split(" ");
      assert.equal(Number(stat[3]), pid, "session id"); // setsid: it leads its own session
      assert.equal(await Deno.readLink(`/proc/${pid}/fd/1`), "/dev/null");
      sendDatagram(socketPath, encoder.encode("<13>detached hello"));
      await host.waitFor(/detached hello/);
      Deno.kill(pid, "SIGTERM");
      for (let i = 0; i < 100 && (await daemonProcesses()) !== ""; i++) {
        await new Promise((res) => setTimeout(res, 50));
      }
      assert.equal(await daemonProcesses(), "");
      await assert.rejects(Deno.lstat(socketPath), Deno.errors.NotFound);
      await assert.rejects(Deno.lstat(pidfile), Deno.errors.NotFound);
    } finally {
      await host.close();
    }
  });
});

Deno.test("bad input: clear message, documented exit code, nothing left behind", async () => {
  const site = await testSite();
  const iniFile = `${site.sysconfdir}/jk_socketd.ini`;
  const original = await Deno.readTextFile(iniFile);
  const nobodyUser = await createUser();
  try {
    await withJail(async ({ dir, socketPath, upstream }) => {
      const host = new DatagramListener(upstream);
      const run = async (args: string[], opts: { uid?: number; gid?: number } = {}) => {
        const r = await runTool("jk_socketd", ["-n", `--log-socket=${upstream}`, ...args], opts);
        assert.equal(await daemonProcesses(), "", `a process is left after ${args}`);
        await assert.rejects(Deno.lstat(socketPath), Deno.errors.NotFound, `${args}`);
        return { code: r.code, stderr: r.stderr.trim() };
      };
      try {
        // Command line.
        assert.equal((await run(["--bogus"])).code, 2);
        assert.equal((await run(["--base=100"])).code, 2);
        assert.match((await run(["--socket=dev/log"])).stderr, /not an absolute path/);
        // Not root.
        const notRoot = await run([`--socket=${socketPath}`], {
          uid: nobodyUser.uid,
          gid: nobodyUser.gid,
        });
        assert.deepEqual([notRoot.code, /you are not root/.test(notRoot.stderr)], [1, true]);
        // No log socket to relay to.
        const noUpstream = await runTool("jk_socketd", [
          "-n",
          `--socket=${socketPath}`,
          `--log-socket=${dir}/nothing-here`,
        ]);
        assert.equal(noUpstream.code, 1);
        assert.match(noUpstream.stderr, /while connecting to .*nothing-here/);
        // A socket in a missing directory, next to a good one: neither is left.
        await Deno.writeTextFile(
          iniFile,
          `[${socketPath}]\n\n[${dir}/missing/dev/log]\nbase = 100\n`,
        );
        const missing = await run([]);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /while opening .*missing\/dev\/log: directory .*missing\/dev/);
        // Malformed ini, a relative socket, an unknown key.
        for (
          const [text, pattern] of [
            [`[${socketPath}\nbase = 1\n`, /jk_socketd\.ini:1:/],
            [`[dev/log]\n`, /section \[dev\/log\] is not an absolute path/],
            [`[${socketPath}]\nrate = 1\n`, /unknown key "rate"/],
            [`[${socketPath}]\nbase = lots\n`, /"base" .* must be a decimal integer/],
            [`# nothing\n`, /no sockets configured/],
          ] as const
        ) {
          await Deno.writeTextFile(iniFile, text);
          const r = await run([]);
          assert.match(r.stderr, pattern);
          assert.equal(r.code, pattern.source.includes("no sockets") ? 1 : 11, r.stderr);
        }
        await Deno.writeTextFile(iniFile, original);
        // Something that is not a socket at the path is never removed.
        await Deno.writeTextFile(socketPath, "precious");
        const r = await runTool("jk_socketd", [
          "-n",
          `--socket=${socketPath}`,
          `--log-socket=${upstream}`,
        ]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /exists and is not a socket/);
        assert.equal(await Deno.readTextFile(socketPath), "precious");
        await Deno.remove(socketPath);
        // A socket directory others can write.
        await Deno.chmod(`${dir}/jail/dev`, 0o777);
        const open = await run([`--socket=${socketPath}`]);
        assert.equal(open.code, 1);
        assert.match(open.stderr, /must be owned by root and not writable by group or others/);
        await Deno.chmod(`${dir}/jail/dev`, 0o755);
        // An unwritable pidfile: the daemon does not stay half-started.
        const noPid = await run([`--socket=${socketPath}`, `--pidfile=${dir}/no/such/dir/pid`]);
        assert.equal(noPid.code, 1);
        assert.match(noPid.stderr, /failed to write pid to/);
      } finally {
        await host.close();
      }
    });
  } finally {
    await Deno.writeTextFile(iniFile, original);
    await nobodyUser.remove();
  }
});

Deno.test("a second daemon does not steal a socket another one serves", async () => {
  await withJail(async ({ socketPath, upstream }) => {
    await withRelay(upstream, [`--socket=${socketPath}`], async (_first, host) => {
      const second = await runTool("jk_socketd", [
        "-n",
        `--socket=${socketPath}`,
        `--log-socket=${upstream}`,
      ]);
      assert.equal(second.code, 1);
      assert.match(second.stderr, /another process is serving this socket/);
      sendDatagram(socketPath, encoder.encode("<13>first still serves"));
      await host.waitFor(/first still serves/);
    });
  });
});

Deno.test("the systemd unit is installed for the site and runs the daemon in the foreground", async () => {
  const site = await testSite();
  const unit = `${site.prefix}/etc/systemd/system/jk_socketd.service`;
  const text = await Deno.readTextFile(unit);
  assert.match(text, new RegExp(`^ExecStart=${site.prefix}/usr/sbin/jk_socketd -n$`, "m"));
  assert.match(text, /^KillMode=mixed$/m);
  const analyze = await runCommand("systemd-analyze", ["verify", unit]).catch(() => null);
  if (analyze) assert.equal(analyze.code, 0, analyze.stderr);
});
