/**
 * `deno task demo` (`./bootstrap.sh demo`): the seed's example, start to
 * finish, as a narrative. Installs the tools into a scratch prefix, builds a
 * jail with jk_init, creates a throw-away account and jails it with
 * jk_jailuser, then uses it the way its owner would — sftp, scp and rsync,
 * through a private OpenSSH server on 127.0.0.1 when one is installed, else
 * through the same login chain started directly — shows what the account can
 * see and what it is refused, runs jk_check on the jail, and removes
 * everything it created.
 *
 * `--direct` skips sshd even when it is installed. Needs root. Exit 0 when
 * every step did what it should, 1 otherwise.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { findTool } from "../src/tools.ts";
import { runCommand, type RunResult, runTool, scratchDir, testSite } from "./harness.ts";
import {
  type JailedAccount,
  jailedAccount,
  SFTP_SERVER,
  sshdAvailable,
  startSshd,
  type TestSshd,
  transferSection,
} from "./login_fixture.ts";

const say = (text = "") => console.log(text);
let steps = 0;
const step = (text: string) => say(`\n${++steps}. ${text}`);
const indent = (text: string) =>
  text.trimEnd().split("\n").filter((l) => l !== "").map((l) => `     ${l}`).join("\n");
let failures = 0;

function check(good: boolean, text: string) {
  say(`   ${good ? "ok  " : "FAIL"} ${text}`);
  if (!good) failures++;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = [await Deno.readFile(a), await Deno.readFile(b)];
    return x.length === y.length && x.every((byte, i) => byte === y[i]);
  } catch {
    return false;
  }
}

/** How the demo reaches the account: ssh options, or a stand-in for ssh. */
interface Transport {
  /** Options for `scp`/`sftp` (`-S wrapper` or `-P port …`). */
  copy: string[];
  /** `rsync -e` value. */
  rsyncShell: string;
  /** Runs a remote command the way ssh would. */
  run(command: string | null): Promise<RunResult>;
  describe: string;
  stop(): Promise<void>;
}

function viaSshd(sshd: TestSshd, account: JailedAccount, cwd: string): Transport {
  const target = `${account.user.name}@127.0.0.1`;
  return {
    copy: sshd.copyOptions,
    rsyncShell: sshd.rsyncShell,
    run: (command) =>
      runCommand("ssh", ["-T", ...sshd.clientOptions, target, ...(command ? [command] : [])], {
        cwd,
      }),
    describe: `a private sshd on 127.0.0.1:${sshd.port} (UsePAM no, key login, ` +
      `Subsystem sftp ${SFTP_SERVER})`,
    stop: () => sshd.stop(),
  };
}

/**
 * Without sshd: a small script standing in for `ssh` that does what sshd does
 * after authentication — runs the account's login shell (jk_chrootsh) as the
 * user with `-c COMMAND` (a subsystem request "sftp" becomes sftp-server).
 */
async function direct(account: JailedAccount, dir: string, cwd: string): Promise<Transport> {
  const shell = (await Deno.readTextFile("/etc/passwd")).split("\n")
    .find((l) => l.startsWith(`${account.user.name}:`))!.split(":")[6];
  const wrapper = `${dir}/as-sshd`;
  await Deno.writeTextFile(
    wrapper,
    [
      "#!/bin/sh",
      "# Stands in for ssh: [options] [--] HOST COMMAND... -> the login shell with -c.",
      "subsystem=",
      'while [ $# -gt 0 ]; do case "$1" in',
      "  --) shift; break ;;",
      "  -s) subsystem=1; shift ;;",
      "  -*) shift ;;",
      "  *) break ;;",
      "esac; done",
      "shift",
      'cmd="$*"',
      `[ -n "$subsystem" ] && [ "$cmd" = sftp ] && cmd=${SFTP_SERVER}`,
      `exec setpriv --reuid=${account.user.uid} --regid=${account.user.gid} --init-groups \\`,
      `  env -i PATH=/usr/bin:/bin USER=${account.user.name} SHELL=${shell} \\`,
      `  HOME=${account.jail}/./home/${account.user.name} ${shell} -c "$cmd"`,
      "",
    ].join("\n"),
  );
  await Deno.chmod(wrapper, 0o755);
  return {
    copy: ["-S", wrapper],
    rsyncShell: wrapper,
    run: (command) =>
      command === null
        ? runCommand("setpriv", [
          `--reuid=${account.user.uid}`,
          `--regid=${account.user.gid}`,
          "--init-groups",
          shell,
        ], { cwd })
        : runCommand(wrapper, ["demo-host", command], { cwd }),
    describe: `no sshd: ${wrapper} runs the login shell as the user, as sshd would`,
    stop: () => Promise.resolve(),
  };
}

async function main(): Promise<number> {
  if (Deno.uid() !== 0) {
    console.error("demo: must run as root (it installs setuid trampolines, chroots, adds a user)");
    return 1;
  }
  say("jailkit for Deno: an account that can only use sftp, scp and rsync, inside a jail,");
  say("logging in through OpenSSH (sshd -> jk_chrootsh -> jk_lsh -> the transfer program).");

  step("Install the tools (dev launchers: Deno runs the sources with each tool's permissions)");
  const site = await testSite();
  say(`   prefix ${site.prefix}, ini files in ${site.sysconfdir}`);

  step("Build a jail and jail a throw-away account");
  const account = await jailedAccount(site, (line) => say(`   $ ${line}`));
  const local = await scratchDir("demo-local");
  let transport: Transport | undefined;
  try {
    const { user, jail, home } = account;
    const hostLine = (await Deno.readTextFile("/etc/passwd")).split("\n")
      .find((l) => l.startsWith(`${user.name}:`));
    const jailLine = (await Deno.readTextFile(`${jail}/etc/passwd`)).split("\n")
      .find((l) => l.startsWith(`${user.name}:`));
    say(`   host /etc/passwd: ${hostLine}`);
    say(`   jail /etc/passwd: ${jailLine}`);
    say(`   added to ${account.lshIni}:\n${indent(transferSection(user.name))}`);

    step("Connect");
    const viaSsh = !Deno.args.includes("--direct") && await sshdAvailable();
    transport = viaSsh
      ? viaSshd(await startSshd(account), account, local)
      : await direct(account, local, local);
    say(`   ${transport.describe}`);
    const target = viaSsh ? `${user.name}@127.0.0.1` : "demo-host";

    await Deno.writeFile(`${local}/report.bin`, randomBytes(256 * 1024));
    step("sftp: upload, download, list");
    await Deno.writeTextFile(
      `${local}/batch`,
      "put report.bin\nget report.bin report-back.bin\nls -l\n",
    );
    let r = await runCommand("sftp", [...transport.copy, "-b", `${local}/batch`, target], {
      cwd: local,
    });
    say(indent(r.stdout));
    check(r.code === 0, `sftp exited ${r.code}${r.code ? `: ${r.stderr.trim()}` : ""}`);
    check(await sameBytes(`${local}/report.bin`, `${home}/report.bin`), "uploaded bytes match");
    check(
      await sameBytes(`${local}/report.bin`, `${local}/report-back.bin`),
      "downloaded bytes match",
    );
    const mode = (await Deno.stat(`${home}/report.bin`).catch(() => null))?.mode ?? 0;
    check((mode & 0o022) === 0, `upload mode ${(mode & 0o777).toString(8)} (umask 022)`);

    step("scp: upload and download");
    r = await runCommand("scp", [...transport.copy, "report.bin", `${target}:via-scp.bin`], {
      cwd: local,
    });
    check(r.code === 0 && await sameBytes(`${local}/report.bin`, `${home}/via-scp.bin`), "scp up");
    r = await runCommand("scp", [...transport.copy, `${target}:via-scp.bin`, "scp-back.bin"], {
      cwd: local,
    });
    check(
      r.code === 0 && await sameBytes(`${local}/report.bin`, `${local}/scp-back.bin`),
      "scp down",
    );

    step("rsync: a directory up and back");
    await Deno.mkdir(`${local}/photos/2026`, { recursive: true });
    await Deno.writeFile(`${local}/photos/2026/beach 1.jpg`, randomBytes(90_000));
    await Deno.writeFile(`${local}/photos/index.txt`, randomBytes(1_000));
    r = await runCommand(
      "rsync",
      ["-az", "--stats", "-e", transport.rsyncShell, "photos/", `${target}:photos/`],
      { cwd: local },
    );
    say(
      indent(
        r.stdout.split("\n").filter((l) => /^(Number of files|Total bytes sent)/.test(l)).join(
          "\n",
        ),
      ),
    );
    check(
      r.code === 0 &&
        await sameBytes(`${local}/photos/2026/beach 1.jpg`, `${home}/photos/2026/beach 1.jpg`),
      `rsync up (exit ${r.code})`,
    );
    r = await runCommand(
      "rsync",
      ["-a", "-e", transport.rsyncShell, `${target}:photos/`, "back/"],
      {
        cwd: local,
      },
    );
    check(
      r.code === 0 && await sameBytes(`${local}/photos/index.txt`, `${local}/back/index.txt`),
      `rsync down (exit ${r.code})`,
    );

    step("What the account sees: the jail is its whole world");
    await Deno.writeTextFile(`${local}/look`, "ls -a /\nls /home\nget /etc/passwd seen-passwd\n");
    r = await runCommand("sftp", [...transport.copy, "-b", `${local}/look`, target], {
      cwd: local,
    });
    say(indent(r.stdout));
    const seen = await Deno.readTextFile(`${local}/seen-passwd`).catch(() => "");
    say(`   its /etc/passwd:\n${indent(seen)}`);
    check(
      !/^(daemon|bin|sys):/m.test(seen) && seen.includes(user.name),
      "no host accounts in sight",
    );

    step("What the account cannot do (exit codes are jk_lsh's)");
    const attempts: [string | null, number, string][] = [
      [null, 7, "an interactive shell"],
      ["id", 4, "a program not in jk_lsh.ini"],
      ["rsync --server -e 'sh -c id' . x", 4, "rsync with a remote shell"],
      ["scp -S /bin/sh -t x", 4, "scp with a replacement ssh"],
      ["rsync --version; id", 6, "a second command"],
      ["rsync --version $(id)", 6, "command substitution"],
    ];
    for (const [command, code, what] of attempts) {
      r = await transport.run(command);
      const message = r.stderr.trim().split("\n").pop() ?? "";
      check(
        r.code === code,
        `${what}: ${command === null ? "(login)" : command} -> exit ${r.code}`,
      );
      say(`          ${message}`);
    }

    if (findTool("jk_check")) {
      // The jail's accounts, homes and jk_lsh.ini differ from the host's on
      // purpose, and so does the dev runtime's module cache: a jk_check.ini
      // section says so, as an admin's would.
      const checkIni = `${local}/jk_check.ini`;
      await Deno.writeTextFile(
        checkIni,
        `[${jail}]\nignorepathoncompare = ${jail}/home, ${jail}/etc/passwd, ${jail}/etc/group, ` +
          `${jail}${site.sysconfdir}/jk_lsh.ini, ${jail}${site.prefix}/usr/lib/jailkit/cache\n`,
      );
      step(`jk_check -c ${checkIni} ${jail}`);
      say(indent(await Deno.readTextFile(checkIni)));
      r = await runTool("jk_check", ["-c", checkIni, jail]);
      say(indent(r.stdout + r.stderr) || "     (no findings)");
      say(`   jk_check exited ${r.code} (0: no problem found, 1: problems listed above)`);
    }
  } finally {
    step("Clean up: sshd, the account, the jail, the prefix");
    await transport?.stop();
    await account.remove();
    await Deno.remove(local, { recursive: true }).catch(() => {});
  }
  say(
    failures === 0
      ? "\ndemo finished: every step did what it should."
      : `\ndemo: ${failures} step(s) failed.`,
  );
  return failures === 0 ? 0 : 1;
}

if (import.meta.main) {
  const code = await main();
  // The harness removes the scratch prefix on unload; Deno.exit runs unload handlers.
  Deno.exit(code);
}
