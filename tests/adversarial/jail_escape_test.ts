/**
 * Adversarial: the jailed user against the jail. A shell account built by the
 * real tools (jk_init basicshell, jk_jailuser -s /bin/sh) logs in through the
 * installed setuid jk_chrootsh with `-c CMD`, as sshd makes it, and runs an
 * attack program (tests/adversarial/attack_fixture.ts) that tries the known
 * chroot escapes (peers-and-threats §2.1–§2.7) to read a host-only secret and
 * to create a file next to it.
 *
 * Every attack has a control that shows the same program does escape where
 * the defence is missing (root in a plain chroot, an fd leaked by chroot(8)),
 * so a failure to escape is the jail's doing, not the program's. Nothing
 * outside the jail may change: the outside directory and the host's account
 * files are digested before and after.
 *
 * Already proven elsewhere, so not repeated: the jailed process's
 * /proc/PID/status (NoNewPrivs 1, no capabilities, equal uid/gid fields,
 * only fds 0–2) in tests/jk_chrootsh_test.ts and tests/privileged_test.ts.
 *
 * Needs root, cc and a static libc (libc6-dev).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PTRACE_SCOPE } from "../../src/check/host.ts";
import { runCommand, type RunResult, runTool, testPrefix } from "../harness.ts";
import type { JailedAccount } from "../login_fixture.ts";
import {
  hostFilesDigest,
  IN_JAIL,
  IN_JAIL_SUID,
  login,
  type Outside,
  outside,
  shellAccount,
  steps,
} from "./attack_fixture.ts";

const root = Deno.uid() === 0;

/**
 * Runs `fn` with a fresh shell account and outside directory, and asserts
 * afterwards that neither the outside directory nor the host's account files
 * changed and that no proof of escape exists. Controls that escape on
 * purpose plant their proof under `out.dir/control-*` and remove it.
 */
async function withAttack(
  fn: (account: JailedAccount, out: Outside) => Promise<void>,
): Promise<void> {
  const account = await shellAccount();
  const out = await outside(account.user.uid, account.user.gid);
  try {
    const names = ["root", account.user.name];
    const before = { out: await out.digest(), host: await hostFilesDigest(names) };
    await fn(account, out);
    await assert.rejects(Deno.lstat(out.proof), Deno.errors.NotFound, "the attack wrote outside");
    assert.equal(await out.digest(), before.out, "something changed outside the jail");
    assert.equal(await hostFilesDigest(names), before.host, "a host account or root file changed");
  } finally {
    await out.remove();
    await account.remove();
  }
}

/** Runs a control that escapes on purpose, then removes what it planted. */
async function control(out: Outside, run: (proof: string) => Promise<RunResult>) {
  const proof = `${out.dir}/control-${crypto.randomUUID().slice(0, 8)}`;
  try {
    return steps((await run(proof)).stdout);
  } finally {
    await Deno.remove(proof).catch(() => {});
  }
}

/** The attack's steps inside the jail, after checking the login itself worked. */
async function inJail(account: JailedAccount, command: string, prelude = "") {
  const r = await login(account, command, prelude);
  assert.equal(r.code, 0, `login failed: ${r.stderr}`);
  const s = steps(r.stdout);
  const { uid } = account.user;
  assert.equal(s.get("uids"), `${uid} ${uid} ${uid}`, r.stdout);
  return s;
}

Deno.test({
  name: "jailed user: the double-chroot escape fails with EPERM, a setuid-root copy too",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      const { jail, user } = account;
      // Control: root inside a plain chroot escapes with this very program.
      const asRoot = await control(
        out,
        (proof) => runCommand("/usr/sbin/chroot", [jail, IN_JAIL, "chroot", out.secret, proof]),
      );
      assert.equal(asRoot.get("chroot-dot"), "ok");
      assert.equal(asRoot.get("secret"), `read ${out.token}`);
      assert.equal(asRoot.get("plant"), "ok");
      // Control: the setuid copy is really setuid root (outside a jail, euid 0).
      const suid = await runCommand(`${jail}${IN_JAIL_SUID}`, ["read"], user);
      assert.equal(steps(suid.stdout).get("uids"), `${user.uid} 0 0`);

      for (const program of [IN_JAIL, IN_JAIL_SUID]) {
        const s = await inJail(account, `${program} chroot ${out.secret} ${out.proof}`);
        assert.equal(s.get("chroot"), "EPERM", `${program}: ${[...s]}`);
        assert.equal(s.has("secret"), false);
      }
    }),
});

Deno.test({
  name: "jailed user: a user namespace (CAP_SYS_CHROOT inside it) is refused in the jail",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      // Control: outside the jail the same user may create one (where the host allows
      // unprivileged user namespaces) and escape a chroot from inside it.
      const free = await control(out, (proof) =>
        runCommand(`${account.jail}${IN_JAIL}`, ["userns", out.secret, proof], {
          ...account.user,
          cwd: account.home,
        }));
      const s = await inJail(account, `${IN_JAIL} userns ${out.secret} ${out.proof}`);
      assert.equal(s.get("unshare-user"), "EPERM", [...s].join("; "));
      assert.equal(s.get("unshare-mount"), "EPERM");
      if (free.get("unshare-user") === "ok") {
        assert.equal(free.get("secret"), `read ${out.token}`);
      }
    }),
});

Deno.test({
  name: "jailed user: open_by_handle_at of the host's root directory is refused",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      const fsType = (await runCommand("stat", ["-f", "-c", "%T", account.jail])).stdout.trim();
      // Control (ext4, whose root is inode 2): root in a plain chroot opens the host's root.
      if (fsType === "ext2/ext3") {
        const asRoot = await control(out, (proof) =>
          runCommand("/usr/sbin/chroot", [account.jail, IN_JAIL, "handle", out.secret, proof]));
        assert.equal(asRoot.get("secret"), `read ${out.token}`);
      }
      const s = await inJail(account, `${IN_JAIL} handle ${out.secret} ${out.proof}`);
      assert.equal(s.get("open_by_handle_at"), "EPERM");
    }),
});

Deno.test({
  name: "jailed user: a directory fd opened before login does not reach the jail",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      const { jail, user } = account;
      const fds = `exec 5</ 6<${out.dir} 7</etc;`;
      // Control: chroot(8) keeps inherited fds, and the program walks out through fd 5.
      const leaked = await control(out, (proof) =>
        runCommand("/usr/bin/bash", [
          "-c",
          `${fds} exec /usr/sbin/chroot --userspec=${user.uid}:${user.gid} ${jail} ` +
          `${IN_JAIL} fds ${out.secret} ${proof}`,
        ]));
      assert.equal(leaked.get("dirfd"), "7");
      assert.equal(leaked.get("secret"), `read ${out.token}`);

      const s = await inJail(account, `${IN_JAIL} fds ${out.secret} ${out.proof}`, fds);
      assert.equal(s.get("dirfds"), "none", [...s].join("; "));
    }),
});

Deno.test({
  name: "jailed user: the host's /etc/shadow and files are out of reach by path and /proc/1/root",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      const host = (await Deno.readTextFile("/etc/shadow")).split("\n")[0];
      const paths = ["/etc/shadow", "/proc/1/root/etc/shadow", out.secret, "/etc/passwd"];
      const s = await inJail(account, `${IN_JAIL} read ${paths.join(" ")}`);
      assert.equal(s.get("/etc/shadow"), "ENOENT", "the jail has no shadow file of its own");
      assert.equal(s.get("/proc/1/root/etc/shadow"), "ENOENT", "no /proc in the jail");
      assert.equal(s.get(out.secret), "ENOENT");
      // What the user sees as /etc/passwd is the jail's.
      const jailPasswd = (await Deno.readTextFile(`${account.jail}/etc/passwd`)).split("\n")[0];
      assert.equal(s.get("/etc/passwd"), `read ${jailPasswd}`);
      assert.ok(![...s.values()].includes(`read ${host}`));
    }),
});

/** A process of the jailed user's uid running outside the jail (a cron job, a service). */
function sameUidOutside(account: JailedAccount, cwd: string): Deno.ChildProcess {
  return new Deno.Command("/usr/bin/sleep", {
    args: ["120"],
    uid: account.user.uid,
    gid: account.user.gid,
    cwd,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** The findings of jk_check run on `jail` as a JSON-line list. */
function findings(r: RunResult): { code: string; path: string; message: string }[] {
  return r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

Deno.test({
  name: "jailed user: /proc mounted in the jail leads out through a same-uid process; " +
    "jk_check reports proc-mounted",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      const proc = `${account.jail}/proc`;
      const victim = sameUidOutside(account, out.dir);
      await Deno.mkdir(proc, { mode: 0o755 });
      const mounted = await runCommand("mount", ["-t", "proc", "proc", proc]);
      assert.equal(mounted.code, 0, mounted.stderr);
      try {
        const via = `/proc/${victim.pid}`;
        const s = await inJail(
          account,
          `${IN_JAIL} read /proc/1/root/etc/shadow ${via}/root${out.secret} ${via}/cwd/secret`,
        );
        // root's processes stay closed (ptrace access checks)...
        assert.equal(s.get("/proc/1/root/etc/shadow"), "EACCES");
        // ...but the magic links of the user's own process outside are a way out (§2.7).
        assert.equal(s.get(`${via}/root${out.secret}`), `read ${out.token}`);
        assert.equal(s.get(`${via}/cwd/secret`), `read ${out.token}`);
        const report = findings(await runTool("jk_check", ["--json", account.jail]));
        assert.ok(
          report.some((f) => f.code === "proc-mounted" && f.path === proc),
          JSON.stringify(report),
        );
      } finally {
        victim.kill("SIGKILL");
        await victim.status;
        await runCommand("umount", ["-l", proc]);
      }
    }),
});

/** jk_check's own sources run with --allow-all, as an admin may run it to read /proc/sys. */
async function jkCheckWithAllowAll(args: string[]): Promise<RunResult> {
  const lib = `${await testPrefix()}/usr/lib/jailkit`;
  return runCommand(
    `${lib}/deno`,
    [
      "run",
      "--no-config",
      "--no-lock",
      "--no-remote",
      "--no-npm",
      "--cached-only",
      "--no-prompt",
      "--allow-all",
      `${lib}/src/jk_check.ts`,
      ...args,
    ],
    {
      env: {
        PATH: "/usr/bin:/bin",
        DENO_DIR: `${lib}/cache`,
        DENO_NO_UPDATE_CHECK: "1",
        NO_COLOR: "1",
      },
    },
  );
}

Deno.test({
  name: "jailed user: ptrace of a same-uid process outside is refused by Yama or reported by " +
    "jk_check; signals reach it (a limit of chroot)",
  ignore: !root,
  fn: () =>
    withAttack(async (account, out) => {
      const scope = await Deno.readTextFile(PTRACE_SCOPE).then((s) => s.trim(), () => null);
      const classic = scope === null || scope === "0";
      const victim = sameUidOutside(account, out.dir);
      try {
        const s = await inJail(account, `${IN_JAIL} ptrace ${victim.pid}`);
        const installed = findings(await runTool("jk_check", ["--json", account.jail]));
        const full = findings(await jkCheckWithAllowAll(["--json", account.jail]));
        const reported = full.filter((f) => f.code === "sysctl-ptrace-scope");
        if (classic) {
          // This kernel lets the jailed user attach to, and rewrite, their process outside...
          assert.equal(s.get("ptrace-attach"), "ok", `ptrace_scope ${scope}: ${[...s]}`);
          assert.equal(s.get("ptrace-peek"), "ok");
          // ...so jk_check says so: as "not checked" under its own permissions, which keep
          // /proc/sys closed, and as a finding when it may read /proc/sys.
          assert.ok(
            installed.some((f) => f.code === "not-checked" && f.path === PTRACE_SCOPE),
            JSON.stringify(installed),
          );
          assert.equal(reported.length, 1, JSON.stringify(full));
        } else {
          assert.equal(s.get("ptrace-attach"), "EPERM", `ptrace_scope ${scope}`);
          assert.deepEqual(reported, []);
        }
        // chroot separates no processes: a signal to the same uid outside lands.
        const k = await inJail(account, `${IN_JAIL} kill ${victim.pid} 15`);
        assert.equal(k.get("kill"), "ok");
        assert.equal((await victim.status).signal, "SIGTERM");
      } finally {
        try {
          victim.kill("SIGKILL");
        } catch {
          // already ended by the test
        }
        await victim.status;
      }
    }),
});
