/**
 * End to end, for real: a jail built with jk_init, an account jailed with
 * jk_jailuser, logging in through a private OpenSSH server (sshd → the
 * setuid jk_chrootsh → jk_lsh in the jail → sftp-server / scp / rsync). Files
 * go both ways and arrive byte for byte; everything else is refused with
 * jk_lsh's exit codes; the user sees only the jail. Then the same chain
 * without sshd, started the way sshd starts it.
 *
 * Needs root and Debian's openssh-server (and rsync, openssh-client).
 *
 * @module
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { runCommand, type RunResult, scratchDir, testSite, toolPathUnderTest } from "./harness.ts";
import { type JailedAccount, jailedAccount, sshdAvailable, startSshd } from "./login_fixture.ts";

const root = Deno.uid() === 0;
const haveSshd = root && await sshdAvailable();

async function sameBytes(a: string, b: string, what: string) {
  const [x, y] = [await Deno.readFile(a), await Deno.readFile(b)];
  assert.equal(x.length, y.length, `${what}: sizes differ`);
  assert.ok(x.every((byte, i) => byte === y[i]), `${what}: contents differ`);
}

/** A file of random bytes, owned by nobody in particular. */
async function payload(path: string, size: number) {
  await Deno.writeFile(path, randomBytes(size));
}

function ok(r: RunResult, what: string, log = "") {
  assert.equal(r.code, 0, `${what} exited ${r.code}\n${r.stderr}${r.stdout}\n${log}`);
}

Deno.test({
  name: "e2e through sshd: sftp, scp and rsync both ways; everything else refused",
  ignore: !haveSshd,
  fn: async () => {
    const site = await testSite();
    const account = await jailedAccount(site);
    const local = await scratchDir("e2e-local");
    const sshd = await startSshd(account);
    try {
      const target = `${account.user.name}@127.0.0.1`;
      const ssh = (...args: string[]) =>
        runCommand("ssh", ["-T", ...sshd.clientOptions, target, ...args], { cwd: local });

      // --- sftp: put, get, ls; the user sees the jail as /
      await payload(`${local}/up.bin`, 200_000);
      await Deno.writeTextFile(
        `${local}/batch`,
        [
          "put up.bin sftp.bin",
          "get sftp.bin back-sftp.bin",
          "ls -1a /",
          "get /etc/passwd jail-passwd",
          "",
        ].join("\n"),
      );
      let r = await runCommand(
        "sftp",
        [...sshd.copyOptions, "-b", `${local}/batch`, target],
        { cwd: local },
      );
      ok(r, "sftp", sshd.log());
      await sameBytes(`${local}/up.bin`, `${account.home}/sftp.bin`, "sftp put");
      await sameBytes(`${local}/up.bin`, `${local}/back-sftp.bin`, "sftp get");
      // umask 022 on the upload, and the file belongs to the user.
      const info = await Deno.stat(`${account.home}/sftp.bin`);
      assert.equal(info.uid, account.user.uid);
      assert.equal(info.mode! & 0o022, 0);
      // "/" is the jail: its entries, nothing of the host's.
      const listed = r.stdout.split("\n").map((l) => l.trim().replace(/^\/+/, ""))
        .filter((l) => l !== "" && !l.startsWith("sftp>") && l !== "." && l !== "..");
      const jailTop = [];
      for await (const e of Deno.readDir(account.jail)) jailTop.push(e.name);
      assert.deepEqual(listed.sort(), jailTop.sort(), r.stdout);
      assert.ok(!listed.includes("proc") && !listed.includes("root") && !listed.includes("boot"));
      const jailPasswd = await Deno.readTextFile(`${local}/jail-passwd`);
      assert.equal(jailPasswd, await Deno.readTextFile(`${account.jail}/etc/passwd`));
      assert.ok(!/^(daemon|bin|sys):/m.test(jailPasswd), "host accounts visible");

      // --- scp, SFTP protocol (OpenSSH 9's default) and the legacy protocol (-O)
      for (const mode of [[], ["-O"]]) {
        const name = `scp${mode.join("")}.bin`;
        r = await runCommand("scp", [...sshd.copyOptions, ...mode, "up.bin", `${target}:${name}`], {
          cwd: local,
        });
        ok(r, `scp ${mode} upload`, sshd.log());
        await sameBytes(`${local}/up.bin`, `${account.home}/${name}`, `scp ${mode} upload`);
        r = await runCommand(
          "scp",
          [...sshd.copyOptions, ...mode, `${target}:${name}`, `back-${name}`],
          { cwd: local },
        );
        ok(r, `scp ${mode} download`, sshd.log());
        await sameBytes(`${local}/up.bin`, `${local}/back-${name}`, `scp ${mode} download`);
      }

      // --- rsync both ways, with the options clients commonly use
      await Deno.mkdir(`${local}/tree/sub`, { recursive: true });
      await payload(`${local}/tree/a.bin`, 50_000);
      await payload(`${local}/tree/sub/b c.bin`, 70_000);
      r = await runCommand("rsync", [
        "-az",
        "--partial",
        "--delete",
        "-e",
        sshd.rsyncShell,
        "tree/",
        `${target}:tree/`,
      ], { cwd: local });
      ok(r, "rsync upload", sshd.log());
      await sameBytes(`${local}/tree/sub/b c.bin`, `${account.home}/tree/sub/b c.bin`, "rsync up");
      r = await runCommand("rsync", [
        "-a",
        "-e",
        sshd.rsyncShell,
        `${target}:tree/`,
        "tree-back/",
      ], { cwd: local });
      ok(r, "rsync download", sshd.log());
      await sameBytes(`${local}/tree/a.bin`, `${local}/tree-back/a.bin`, "rsync down");
      await sameBytes(`${local}/tree/sub/b c.bin`, `${local}/tree-back/sub/b c.bin`, "rsync down");

      // --- refused: interactive, unlisted programs, remote shells, shell syntax
      const refusals: [string[], number, RegExp][] = [
        [[], 7, /interactive shell session/],
        [["id"], 4, /not allowed/],
        [["/bin/sh -c id"], 4, /not allowed/],
        [["rsync --server -e sh . x"], 4, /rsync: option -e/],
        [["rsync --server --rsh=sh . x"], 4, /rsync: option --rsh/],
        [["rsync -e sh x localhost:y"], 4, /only the server side/],
        [["scp -S /bin/sh -t x"], 4, /scp: option -S/],
        [["scp x localhost:y"], 4, /exactly one of -t/],
        [["rsync --version $(id)"], 6, /command substitution/],
        [["rsync --version `id`"], 6, /command substitution/],
        [["rsync --version; id"], 6, /illegal word expansion/],
        [["rsync --version\nid"], 6, /control character/],
      ];
      for (const [command, code, pattern] of refusals) {
        r = await ssh(...command);
        assert.equal(r.code, code, `${JSON.stringify(command)}: ${r.stderr}`);
        assert.match(r.stderr, pattern, JSON.stringify(command));
      }
      // What is allowed runs, and its status comes back through ssh.
      r = await ssh("rsync --version");
      ok(r, "ssh rsync --version");
      r = await ssh("scp -f /nonexistent");
      assert.equal(r.code, 1);
    } finally {
      await sshd.stop();
      await Deno.remove(local, { recursive: true });
      await account.remove();
    }
  },
});

/** Runs the host account's login shell (jk_chrootsh) as the user, with `-c CMD`, as sshd does. */
async function login(account: JailedAccount, command: string | null, stdin?: string) {
  const shell = await toolPathUnderTest("jk_chrootsh");
  return runCommand(shell, command === null ? [] : ["-c", command], {
    uid: account.user.uid,
    gid: account.user.gid,
    env: {
      PATH: "/usr/bin:/bin",
      USER: account.user.name,
      HOME: `${account.jail}/./home/${account.user.name}`,
      SHELL: shell,
      LD_PRELOAD: "/nonexistent/evil.so",
      BASH_ENV: "/tmp/evil",
      RSYNC_RSH: "sh",
    },
    cwd: "/",
    stdin,
  });
}

Deno.test({
  name: "the chain without sshd: jk_chrootsh -c CMD as the user reaches jk_lsh in the jail",
  ignore: !root,
  fn: async () => {
    const site = await testSite();
    const account = await jailedAccount(site);
    try {
      let r = await login(account, "rsync --version");
      ok(r, "rsync --version");
      assert.match(r.stdout, /^rsync +version/);

      // Upload with the scp protocol: lands in the jailed home with umask 022.
      r = await login(account, "scp -t .", "C0666 6 up.txt\nhello\n\0");
      ok(r, "scp -t");
      const info = await Deno.stat(`${account.home}/up.txt`);
      assert.equal(info.mode! & 0o777, 0o644);
      assert.equal(info.uid, account.user.uid);
      assert.equal(await Deno.readTextFile(`${account.home}/up.txt`), "hello\n");
      // Download it again: the jail's path, not the host's.
      r = await login(account, `scp -f /home/${account.user.name}/up.txt`, "\0\0\0\0");
      ok(r, "scp -f");
      assert.match(r.stdout, /^C0644 6 up\.txt\nhello\n/);

      const refusals: [string | null, number][] = [
        [null, 7],
        ["id", 4],
        ["rsync --server -e sh . x", 4],
        ["scp -S /bin/sh -t x", 4],
        ["rsync --version $(id)", 6],
        ["rsync --version `id`", 6],
        ["rsync --version; id", 6],
        ["rsync --version\nid", 6],
      ];
      for (const [command, code] of refusals) {
        r = await login(account, command);
        assert.equal(r.code, code, `${JSON.stringify(command)}: ${r.stderr}`);
      }
    } finally {
      await account.remove();
    }
  },
});
