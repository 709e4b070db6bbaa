/**
 * jk_chrootlaunch, installed, run as root: a daemon-like program (sleep, in a
 * real jail built from host files) is launched and inspected from outside
 * through /proc — ids, groups, no_new_privs, root, descriptors, pidfile.
 */
import assert from "node:assert/strict";
import { launchTarget, parseLaunchOptions, pathInJail } from "../src/jk_chrootlaunch.ts";
import {
  copyWithLibs,
  createUser,
  procStatus,
  runCommand,
  runTool,
  scratchDir,
  type TestUser,
  toolPathUnderTest,
} from "./harness.ts";

/** A jail with /usr/bin/sleep (merged-/usr links included) and an unsafe corner. */
async function withJail(fn: (jail: string, dir: string) => Promise<void>): Promise<void> {
  const dir = await scratchDir("chrootlaunch");
  try {
    const jail = `${dir}/jail`;
    await Deno.mkdir(`${jail}/etc`, { recursive: true });
    await copyWithLibs(jail, ["/usr/bin/sleep"]);
    await fn(jail, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Launches `args` in the background and waits until the pid runs the jail's sleep. */
async function launched(jail: string, args: string[]) {
  const child = new Deno.Command(await toolPathUnderTest("jk_chrootlaunch"), {
    args,
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", DAEMON_SETTING: "kept" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const pid = child.pid;
  for (let i = 0; i < 200; i++) {
    const exe = await Deno.readLink(`/proc/${pid}/exe`).catch(() => "");
    if (exe === `${jail}/usr/bin/sleep`) return { child, pid };
    const done = await Promise.race([
      child.status.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 50)),
    ]);
    if (done) throw new Error(`launcher ended: ${await stderr}`);
  }
  throw new Error(`pid ${pid} never became the jail's sleep`);
}

async function stop(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  await child.status;
}

async function groupsOf(user: TestUser): Promise<string> {
  const ids = (await runCommand("id", ["-G", user.name])).stdout.trim().split(" ").map(Number);
  return [...new Set(ids)].sort((a, b) => a - b).join(" ");
}

Deno.test("options, ids and paths", () => {
  const o = parseLaunchOptions(["-j", "/srv/j", "-x", "/bin/d", "-u", "0", "--", "-f", "x"])!;
  assert.deepEqual([o.jail, o.exec, o.user, o.args], ["/srv/j", "/bin/d", "0", ["-f", "x"]]);
  assert.equal(parseLaunchOptions(["-h"]), null);
  assert.throws(() => parseLaunchOptions(["--bogus"]), /bogus/);
  assert.deepEqual(launchTarget(undefined, undefined), { uid: 0, gid: 0, groups: [] });
  assert.deepEqual(launchTarget("nobody", undefined).uid, 65534);
  assert.notEqual(launchTarget("nobody", undefined).gid, 0);
  assert.deepEqual(launchTarget(undefined, "0"), { uid: 0, gid: 0, groups: [0] });
  assert.throws(() => launchTarget("4000000000", undefined), /does not exist \(interpreted as uid/);
  assert.throws(() => launchTarget("12ab", undefined), /not a valid uid/);
  assert.throws(() => launchTarget("no-such-user-jk", undefined), /does not exist/);
  assert.throws(() => launchTarget(undefined, "no-such-group-jk"), /does not exist/);
  assert.equal(pathInJail("/srv/j", "/srv/j/usr/sbin/d"), "/usr/sbin/d");
  assert.equal(pathInJail("/srv/j", "usr/sbin/d"), "/usr/sbin/d");
  assert.equal(pathInJail("/srv/j", "/srv/jx/d"), "/srv/jx/d");
});

Deno.test("-u alone: the user's own gid and groups, no_new_privs, in the jail, fds closed", async () => {
  const extra = await createUser();
  const user = await createUser({ groups: [extra.name] });
  try {
    await withJail(async (jail, dir) => {
      const pidfile = `${dir}/daemon.pid`;
      const { child, pid } = await launched(jail, [
        "-j",
        jail,
        "-x",
        "/bin/sleep", // through the jail's merged-/usr link
        "-u",
        user.name,
        "-p",
        pidfile,
        "--",
        "30",
      ]);
      try {
        const s = procStatus(pid);
        assert.equal(s.Uid, `${user.uid}\t${user.uid}\t${user.uid}\t${user.uid}`);
        // jailkit kept gid 0 and root's groups here.
        assert.equal(s.Gid, `${user.gid}\t${user.gid}\t${user.gid}\t${user.gid}`);
        assert.equal(
          s.Groups.split(" ").map(Number).sort((a, b) => a - b).join(" "),
          await groupsOf(user),
        );
        assert.ok(s.Groups.split(" ").includes(String(extra.gid)));
        assert.equal(s.NoNewPrivs, "1");
        assert.equal(s.CapEff, "0000000000000000");
        assert.equal(await Deno.readLink(`/proc/${pid}/root`), jail);
        assert.equal(await Deno.readLink(`/proc/${pid}/cwd`), jail);
        assert.deepEqual(
          [...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => e.name).sort(),
          ["0", "1", "2"],
        );
        assert.deepEqual(
          (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0"),
          ["/bin/sleep", "30", ""],
        );
        assert.match(await Deno.readTextFile(`/proc/${pid}/environ`), /DAEMON_SETTING=kept/);
        assert.equal((await Deno.readTextFile(pidfile)).trim(), String(pid));
        // Signals the daemon gets are the defaults (Deno ignores SIGPIPE).
        assert.equal(s.SigIgn, "0000000000000000");
      } finally {
        await stop(child);
      }
    });
  } finally {
    await user.remove();
    await extra.remove();
  }
});

Deno.test("--allow-setuid leaves no_new_privs off; -g alone stays root with one group", async () => {
  await withJail(async (jail) => {
    const a = await launched(jail, [
      "-j",
      jail,
      "-x",
      "/usr/bin/sleep",
      "--allow-setuid",
      "--",
      "30",
    ]);
    try {
      const s = procStatus(a.pid);
      assert.equal(s.NoNewPrivs, "0");
      assert.equal(s.Uid.split("\t")[0], "0");
      assert.equal(s.Groups, ""); // root, but without root's supplementary groups
    } finally {
      await stop(a.child);
    }
    const b = await launched(jail, [
      "-j",
      jail,
      "-x",
      "/usr/bin/sleep",
      "-g",
      "nogroup",
      "--",
      "30",
    ]);
    try {
      const s = procStatus(b.pid);
      const nogroup = (await runCommand("getent", ["group", "nogroup"])).stdout.split(":")[2];
      assert.equal(s.Uid.split("\t")[0], "0");
      assert.equal(s.Gid, `${nogroup}\t${nogroup}\t${nogroup}\t${nogroup}`);
      assert.equal(s.Groups, nogroup);
      assert.equal(s.NoNewPrivs, "1");
    } finally {
      await stop(b.child);
    }
  });
});

Deno.test("the executable must be safe where execve finds it", async () => {
  const user = await createUser();
  try {
    await withJail(async (jail) => {
      const run = (exec: string) =>
        runTool("jk_chrootlaunch", ["-j", jail, "-x", exec, "-u", user.name, "--", "1"]);
      const sleep = `${jail}/usr/bin/sleep`;
      const variant = async (name: string, setup: (path: string) => Promise<void>) => {
        const path = `${jail}/usr/bin/${name}`;
        await Deno.copyFile(sleep, path);
        await Deno.chmod(path, 0o755);
        await setup(path);
        return path;
      };
      await Deno.symlink("sleep", `${jail}/usr/bin/link`);
      await variant("suid", (p) => Deno.chmod(p, 0o4755));
      await variant("gw", (p) => Deno.chmod(p, 0o775));
      await variant("owned", (p) => Deno.chown(p, user.uid, user.gid));
      await Deno.mkdir(`${jail}/opt/open`, { recursive: true });
      await Deno.chmod(`${jail}/opt/open`, 0o777);
      await Deno.copyFile(sleep, `${jail}/opt/open/sleep`);
      for (
        const [exec, pattern] of [
          ["/usr/bin/link", /is a symlink/],
          ["/usr/bin/suid", /is setuid or setgid/],
          ["/usr/bin/gw", /is writable by group or others/],
          ["/usr/bin/owned", /is not owned by root:root/],
          ["/opt/open/sleep", /is in \/opt\/open, which is not root's or is writable/],
          ["/usr/bin/missing", /does not exist/],
          ["/usr/bin", /is not a regular file/],
        ] as const
      ) {
        const r = await run(exec);
        assert.equal(r.code, 29, `${exec}: ${r.stderr}`);
        assert.match(r.stderr, pattern, exec);
      }
      // Not an executable format: execve fails, exit 31, the pidfile is gone again.
      await Deno.writeTextFile(`${jail}/usr/bin/junk`, "not a program");
      await Deno.chmod(`${jail}/usr/bin/junk`, 0o755);
      const pidfile = `${jail}/../junk.pid`;
      const r = await runTool("jk_chrootlaunch", [
        "-j",
        jail,
        "-x",
        "/usr/bin/junk",
        "-p",
        pidfile,
      ]);
      assert.equal(r.code, 31, r.stderr);
      await assert.rejects(Deno.lstat(pidfile), Deno.errors.NotFound);
    });
  } finally {
    await user.remove();
  }
});

Deno.test("bad input: clear message and jailkit's exit codes", async () => {
  const user = await createUser();
  try {
    await withJail(async (jail, dir) => {
      const run = async (args: string[], opts = {}) => {
        const r = await runTool("jk_chrootlaunch", args, opts);
        return [r.code, r.stderr.trim()] as const;
      };
      const x = ["-x", "/usr/bin/sleep"];
      assert.equal((await run(["-h"]))[0], 1);
      assert.equal((await run(["--bogus"]))[0], 1);
      assert.deepEqual((await run(x))[0], 21);
      assert.deepEqual((await run(["-j", jail]))[0], 23);
      const relative = await run(["-j", "srv/jail", ...x]);
      assert.equal(relative[0], 27);
      assert.match(relative[1], /must be an absolute, canonical path/);
      assert.equal((await run(["-j", `${jail}/../jail`, ...x]))[0], 27);
      assert.equal((await run(["-j", jail, ...x, "-u", "no-such-user-jk"]))[0], 1);
      assert.match((await run(["-j", jail, ...x, "-u", "4000000000"]))[1], /interpreted as uid/);
      assert.equal((await run(["-j", jail, ...x, "-g", "no-such-group-jk"]))[0], 1);
      const notRoot = await run(["-j", jail, ...x], { uid: user.uid, gid: user.gid });
      assert.deepEqual([notRoot[0], /must be run as root/.test(notRoot[1])], [1, true]);
      // An unsafe jail, and a jail below a directory others can write.
      await Deno.chmod(`${jail}/etc`, 0o777);
      const unsafe = await run(["-j", jail, ...x]);
      assert.equal(unsafe[0], 25);
      assert.match(unsafe[1], /not a safe jail: .*etc is writable by others/);
      await Deno.chmod(`${jail}/etc`, 0o755);
      await Deno.chmod(dir, 0o1777);
      assert.match((await run(["-j", jail, ...x]))[1], /writable by others/);
      await Deno.chmod(dir, 0o755);
      const noPid = await run(["-j", jail, ...x, "-p", `${dir}/no/dir/pid`]);
      assert.equal(noPid[0], 32);
      assert.match(noPid[1], /failed to write pid/);
      assert.equal((await run(["-j", jail, ...x, "-p", "relative.pid"]))[0], 32);
    });
  } finally {
    await user.remove();
  }
});
