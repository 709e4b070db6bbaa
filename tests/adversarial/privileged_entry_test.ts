/**
 * Adversarial: a local unprivileged user against the setuid jk_chrootsh
 * trampoline, the only privileged entry of the suite. The user controls
 * everything a process inherits — environment, fds 0–2, resource limits,
 * argv[0], signals while it runs — and must gain nothing from any of it: the
 * session is the user's own, in their jail, or nothing runs at all.
 *
 * Covered elsewhere, so only what is missing is here: hostile variables
 * (LD_PRELOAD, NODE_OPTIONS, DENO_*, TMPDIR, BASH_ENV, GLIBC_TUNABLES, USER=root)
 * and argv[0] "dx" / a login "-" / argc 0 in tests/jk_chrootsh_test.ts and
 * tests/trampoline_test.ts; stray fds above 2 and closed stdin there too.
 *
 * Needs root, cc and a static libc (libc6-dev).
 *
 * @module
 */

import assert from "node:assert/strict";
import { createUser, Rng, runCommand, testSeed } from "../harness.ts";
import { treeDigest } from "../jailfixtures.ts";
import type { JailedAccount } from "../login_fixture.ts";
import {
  asUser,
  attackProgram,
  chrootsh,
  hostFilesDigest,
  IN_JAIL,
  shellAccount,
  shq,
  steps,
} from "./attack_fixture.ts";

const root = Deno.uid() === 0;

/** A fresh shell account for `fn`, and proof that neither the jail nor the host changed. */
async function withAccount(fn: (account: JailedAccount) => Promise<void>): Promise<void> {
  const account = await shellAccount();
  try {
    const names = ["root", account.user.name];
    const before = { jail: await treeDigest(account.jail), host: await hostFilesDigest(names) };
    await fn(account);
    assert.equal(await hostFilesDigest(names), before.host, "a host account or root file changed");
    // The home may hold what the session wrote; everything else must be as built.
    const outsideHome = (d: string) =>
      d.split("\n").filter((l) => !l.startsWith(`/home/${account.user.name}/`)).join("\n");
    assert.equal(outsideHome(await treeDigest(account.jail)), outsideHome(before.jail));
  } finally {
    await account.remove();
  }
}

/** The jailed command every login runs: its first line shows the ids it got. */
const PROBE = `${IN_JAIL} read /etc/passwd`;

/** Asserts a login ran PROBE as the user, in the jail. */
function ranAsUser(account: JailedAccount, stdout: string, what: string) {
  const s = steps(stdout);
  const { uid } = account.user;
  assert.equal(s.get("uids"), `${uid} ${uid} ${uid}`, `${what}: ${stdout}`);
  const jailPasswd = Deno.readTextFileSync(`${account.jail}/etc/passwd`).split("\n")[0];
  assert.equal(s.get("/etc/passwd"), `read ${jailPasswd}`, `${what}: not the jail's passwd`);
}

/** Processes whose real uid is `uid`, with their effective uid. */
function processesOf(uid: number): { pid: number; euid: number }[] {
  const out = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${e.name}/status`);
      const ids = status.match(/^Uid:\s+(\d+)\s+(\d+)/m);
      if (ids && Number(ids[1]) === uid) out.push({ pid: Number(e.name), euid: Number(ids[2]) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

Deno.test({
  name: "local user: raw environments (no '=', duplicates, non-UTF-8, over 1 MiB) reach the " +
    "jailed shell only as HOME, USER, USERNAME and SHELL",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const program = await attackProgram();
      const enc = new TextEncoder();
      const entries: Uint8Array[] = [
        ...Array.from({ length: 3000 }, (_, i) => enc.encode(`PAD${i}=${"x".repeat(400)}`)),
        enc.encode("NOEQUALS"),
        enc.encode("=nameless"),
        enc.encode("USER=root"),
        enc.encode("USER=root"),
        enc.encode("LOGNAME=root"),
        enc.encode("HOME=/root"),
        enc.encode("SHELL=/bin/bash"),
        new Uint8Array([...enc.encode("BAD"), 0xff, 0xfe, ...enc.encode("=x")]),
        new Uint8Array([...enc.encode("LANG=C."), 0xc0, 0xaf]),
        enc.encode("BASH_FUNC_echo%%=() { id; }"),
        enc.encode("GCONV_PATH=/home"),
        enc.encode("LOCPATH=/home"),
        enc.encode("HOSTALIASES=/etc/shadow"),
        enc.encode("TERM=xterm"),
      ];
      const file = `${account.home}/env.raw`;
      await Deno.writeFile(
        file,
        new Uint8Array(entries.flatMap((e) => [...e, 0])),
        { mode: 0o644 },
      );
      const r = await runCommand(
        program,
        ["exec", file, await chrootsh(), "-c", "/usr/bin/jkattack read /etc/passwd; set"],
        { ...account.user, cwd: "/" },
      );
      assert.equal(r.code, 0, r.stderr);
      ranAsUser(account, r.stdout, "raw environment");
      // dash's `set` lists every variable: the four jk_chrootsh sets, and dash's own.
      const vars = r.stdout.split("\n").filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
        .map((l) => l.slice(0, l.indexOf("=")));
      const own = ["HOME", "SHELL", "USER", "USERNAME"];
      const dash = ["IFS", "OPTIND", "PATH", "PPID", "PS1", "PS2", "PS4", "PWD"];
      assert.deepEqual(vars.filter((v) => !dash.includes(v)).sort(), own, r.stdout);
      assert.match(r.stdout, new RegExp(`^USER='?${account.user.name}'?$`, "m"));
      assert.match(r.stdout, new RegExp(`^HOME='?/home/${account.user.name}'?$`, "m"));
    }),
});

Deno.test({
  name: "local user: a directory as stdin, stdout or stderr is refused before anything runs",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const cs = await chrootsh();
      // A directory fd on 0 would let the jailed program fchdir out of the jail (see
      // jail_escape_test.ts: the fd attack); the trampoline refuses to start with one.
      for (const [redirect, name] of [["0</", "stdin"], ["1<${HOME}", "stdout"]] as const) {
        const r = await asUser(account, `exec ${redirect}; exec ${cs} -c ${shq(PROBE)}`, {
          env: { PATH: "/usr/bin:/bin", HOME: "/" },
        });
        assert.equal(r.code, 127, r.stderr);
        assert.match(r.stderr, new RegExp(`refusing a directory as ${name}`));
        assert.equal(steps(r.stdout).has("uids"), false);
      }
      // stderr a directory: the refusal cannot even be printed, but nothing runs.
      const r = await asUser(account, `exec 2</; exec ${cs} -c ${shq(PROBE)}`);
      assert.equal(r.code, 127);
      assert.equal(r.stdout, "");
    }),
});

Deno.test({
  name: "local user: closed stdin, stdout and stderr reach the jailed program as /dev/null or " +
    "/dev/full, never as a file jk_chrootsh opened",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const child = new Deno.Command("/usr/bin/bash", {
        args: ["-c", `exec 0<&- 1>&- 2>&-; exec ${await chrootsh()} -c 'exec /usr/bin/sleep 30'`],
        uid: account.user.uid,
        gid: account.user.gid,
        cwd: "/",
        clearEnv: true,
        env: { PATH: "/usr/bin:/bin" },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        let seen: string[] | null = null;
        for (let i = 0; i < 400 && !seen; i++) {
          const exe = await Deno.readLink(`/proc/${child.pid}/exe`).catch(() => "");
          if (exe === `${account.jail}/usr/bin/sleep`) {
            const fds = [...Deno.readDirSync(`/proc/${child.pid}/fd`)].map((e) => e.name).sort();
            seen = await Promise.all(fds.map((fd) => Deno.readLink(`/proc/${child.pid}/fd/${fd}`)));
          } else await new Promise((r) => setTimeout(r, 25));
        }
        // glibc reopens a setuid program's closed fds before main (stdin on /dev/full,
        // write-only), the trampoline any it left closed: devices, nothing of jk_chrootsh's.
        assert.ok(seen, "the jailed program never started");
        assert.equal(seen.length, 3, `${seen}`);
        assert.ok(seen.every((link) => /^\/dev\/(null|full)$/.test(link)), `${seen}`);
      } finally {
        child.kill("SIGKILL");
        await child.status;
      }
    }),
});

Deno.test({
  name: "local user: an open files limit below 64 is refused in one line, never a panic " +
    "or a half-started session",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const cs = await chrootsh();
      for (const limit of ["-n 3", "-n 4", "-n 5", "-n 16", "-n 63", "-Sn 20"]) {
        const r = await asUser(account, `ulimit ${limit}; exec ${cs} -c ${shq(PROBE)}`);
        assert.notEqual(r.code, 0, `ulimit ${limit}`);
        assert.equal(r.stdout, "", `ulimit ${limit}: something ran`);
        assert.doesNotMatch(r.stderr, /panicked/, `ulimit ${limit}`);
        // At 3 and 4 the loader cannot open libc for the trampoline itself.
        if (!["-n 3", "-n 4"].includes(limit)) {
          assert.equal(
            r.stderr,
            "jailkit trampoline: the open files limit (ulimit -n) must be at least 64\n",
          );
        }
      }
      const ok = await asUser(account, `ulimit -n 64; exec ${cs} -c ${shq(PROBE)}`);
      assert.equal(ok.code, 0, ok.stderr);
      ranAsUser(account, ok.stdout, "ulimit -n 64");
    }),
});

/** What a round of the signal test does, after an optional wait for the privileged phase. */
type Plan =
  | { kind: "signal"; signal: string }
  | { kind: "stop"; then: "SIGCONT" | "SIGKILL" | "SIGTERM" };

const SIGNALS = ["SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGUSR1"];

/** Whether `pid` is the privileged Deno process (euid 0), and not yet the user's program. */
async function privileged(pid: number): Promise<boolean> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  return /^Uid:\s+\d+\s+0\s/m.test(status);
}

Deno.test({
  name: "local user: signals at random points leave no privileged process and change " +
    "nothing; a stopped privileged jk_chrootsh cannot be traced or read",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const rng = new Rng(testSeed(20261129));
      const why = `(seed ${rng.seed}; JK_SEED=${rng.seed} replays)`;
      const { uid, gid } = account.user;
      const program = await attackProgram();
      const cs = await chrootsh();
      const sendAsUser = (signal: string, pid: number) =>
        runCommand("/usr/bin/kill", ["-s", signal.slice(3), String(pid)], { uid, gid });
      let stoppedPrivileged = 0;
      for (let round = 0; round < 30; round++) {
        const plan: Plan = rng.chance(0.5)
          ? { kind: "stop", then: rng.pick(["SIGCONT", "SIGKILL", "SIGTERM"] as const) }
          : { kind: "signal", signal: rng.pick(SIGNALS) };
        const waitForPrivilege = rng.chance(0.5);
        const delay = rng.int(waitForPrivilege ? 40 : 400);
        const what = `round ${round}: ${JSON.stringify(plan)} ` +
          `${waitForPrivilege ? "privileged + " : ""}${delay} ms ${why}`;

        const child = new Deno.Command("/usr/bin/bash", {
          args: ["-c", `exec ${cs} -c ${shq(PROBE)}`],
          uid,
          gid,
          cwd: "/",
          clearEnv: true,
          env: { PATH: "/usr/bin:/bin" },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const output = child.output();
        const pid = child.pid;
        if (waitForPrivilege) {
          for (let i = 0; i < 2000 && !(await privileged(pid)); i++) {
            await new Promise((r) => setTimeout(r, 1));
          }
        }
        await new Promise((r) => setTimeout(r, delay));
        if (plan.kind === "signal") {
          await sendAsUser(plan.signal, pid);
        } else {
          await sendAsUser("SIGSTOP", pid);
          for (let i = 0; i < 200; i++) {
            const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
            if (stat === "" || / [TtZ] /.test(stat.slice(stat.lastIndexOf(")")))) break;
            await new Promise((r) => setTimeout(r, 2));
          }
          if (await privileged(pid)) {
            stoppedPrivileged++;
            // The caller may stop it, but not look inside: it is not dumpable while privileged.
            const s = steps(
              (await runCommand(program, ["ptrace", String(pid)], { uid, gid })).stdout,
            );
            assert.equal(s.get("ptrace-attach"), "EPERM", what);
            const read = steps(
              (await runCommand(program, ["read", `/proc/${pid}/environ`, `/proc/${pid}/mem`], {
                uid,
                gid,
              })).stdout,
            );
            assert.equal(read.get(`/proc/${pid}/environ`), "EACCES", what);
            assert.equal(read.get(`/proc/${pid}/mem`), "EACCES", what);
          }
          await sendAsUser(plan.then, pid);
          if (plan.then === "SIGTERM") await sendAsUser("SIGCONT", pid);
        }
        const out = await output;
        const stdout = new TextDecoder().decode(out.stdout);
        if (out.signal === null) {
          assert.equal(out.code, 0, `${what}: ${new TextDecoder().decode(out.stderr)}`);
          ranAsUser(account, stdout, what);
        } else {
          // Killed: whatever ran of the jailed program ran as the user, nothing else.
          const ids = stdout.split("\n").filter((l) => l.startsWith("uids: "));
          assert.ok(ids.every((l) => l === `uids: ${uid} ${uid} ${uid}`), `${what}: ${stdout}`);
        }
        await assert.rejects(Deno.stat(`/proc/${pid}`), Deno.errors.NotFound, what);
      }
      assert.ok(stoppedPrivileged > 0, `no round stopped jk_chrootsh while privileged ${why}`);
      assert.deepEqual(processesOf(uid), [], `processes of the user are left ${why}`);
    }),
});

Deno.test({
  name: "local user: argv[0] tricks and arguments that look like Deno flags change nothing",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const cs = await chrootsh();
      const long = `"$(head -c 100000 /dev/zero | tr '\\0' x)"`;
      const names = ["su", "-su", "/usr/sbin/jk_lsh", "-", "--help", "$'a\\nb'", "-A", long];
      for (const name of names) {
        const r = await asUser(account, `exec -a ${name} ${cs} -c ${shq(`${PROBE}; echo "$0"`)}`);
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        ranAsUser(account, r.stdout, `argv[0] ${name}`);
        // Only a login "-" is passed on, as the shell's own login "-".
        const login = name.startsWith("-") || name.startsWith("$'-");
        assert.equal(r.stdout.trim().split("\n").pop(), login ? "-sh" : "/bin/sh", name);
      }
      // After the tool's entry module every word is the tool's (and then the shell's):
      // none reaches the Deno CLI, or --inspect-brk would wait for a debugger.
      const started = Date.now();
      const r = await asUser(
        account,
        `exec ${cs} --inspect-brk=127.0.0.1:9 -A --v8-flags=--allow-natives-syntax -c ${
          shq(PROBE)
        }`,
      );
      assert.ok(Date.now() - started < 20_000, "it waited for a debugger");
      assert.equal(r.stdout, "");
      assert.match(r.stderr, /^\/bin\/sh: \d+: Illegal option --/);
    }),
});

Deno.test({
  name: "local user: USER, LOGNAME and HOME naming root or another account of the same uid " +
    "do not choose the jail",
  ignore: !root,
  fn: () =>
    withAccount(async (account) => {
      const cs = await chrootsh();
      const { uid, gid, name } = account.user;
      // A second account with the same uid whose home names another jail: jailkit looked
      // USER up by name and would have taken it.
      const twin = await createUser();
      await twin.remove();
      const add = await runCommand("useradd", [
        "-o",
        "-u",
        String(uid),
        "-g",
        String(gid),
        "-M",
        "-d",
        `/nonexistent-${twin.name}/./home/${twin.name}`,
        "-s",
        cs,
        twin.name,
      ]);
      assert.equal(add.code, 0, add.stderr);
      try {
        for (const user of ["root", twin.name]) {
          const r = await asUser(account, `exec ${cs} -c ${shq(`${PROBE}; echo "$USER $HOME"`)}`, {
            env: { PATH: "/usr/bin:/bin", USER: user, LOGNAME: user, HOME: "/root" },
          });
          assert.equal(r.code, 0, `USER=${user}: ${r.stderr}`);
          ranAsUser(account, r.stdout, `USER=${user}`);
          assert.equal(r.stdout.trim().split("\n").pop(), `${name} /home/${name}`);
        }
      } finally {
        await runCommand("userdel", ["-f", twin.name]);
      }
    }),
});
