/**
 * The seed's example, as a fixture for the end-to-end test and the demo: a
 * jail built with jk_init, a throw-away account jailed with jk_jailuser that
 * may only use sftp, scp and rsync, and a private OpenSSH server on
 * 127.0.0.1 that logs it in through jk_chrootsh and jk_lsh.
 *
 * Everything lives in scratch directories under /var/lib and goes away with
 * `remove()` / `stop()`. Nothing of the host's own sshd is touched.
 *
 * @module
 */

import { libDir, type Site } from "../src/site.ts";
import { createUser, runCommand, runTool, scratchDir, type TestUser } from "./harness.ts";

/** Debian's sftp-server, which the jail gets from jk_init's `sftp` section. */
export const SFTP_SERVER = "/usr/lib/openssh/sftp-server";

/** The jk_lsh.ini section the jailed account gets: transfer tools only. */
export function transferSection(name: string): string {
  return [
    `[${name}]`,
    "paths = /usr/bin, /usr/lib/openssh",
    `executables = ${SFTP_SERVER}, /usr/bin/scp, /usr/bin/rsync`,
    "",
  ].join("\n");
}

/** A jailed account and its jail. */
export interface JailedAccount {
  user: TestUser;
  jail: string;
  /** The user's home seen from the host: `JAIL/home/NAME`. */
  home: string;
  /** The jk_lsh.ini inside the jail. */
  lshIni: string;
  /** Removes the account and the jail. */
  remove(): Promise<void>;
}

/** Runs an installed tool and fails with its output unless it exits 0. */
async function mustRun(tool: string, args: string[]): Promise<string> {
  const r = await runTool(tool, args);
  if (r.code !== 0) {
    throw new Error(`${tool} ${args.join(" ")} exited ${r.code}:\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/** What {@link jailedAccount} builds instead of the default transfer-only account. */
export interface AccountOptions {
  /** jk_init sections of the jail (default `jk_lsh sftp scp rsync`). */
  sections?: string[];
  /**
   * The shell inside the jail (`jk_jailuser -s`); default jk_lsh, whose ini
   * section is then written. With another shell no jk_lsh.ini is touched.
   */
  shell?: string;
}

/**
 * Builds a jail with `jk_init -j JAIL jk_lsh sftp scp rsync`, creates a user,
 * jails it with `jk_jailuser -n -m -j JAIL`, and writes a jk_lsh.ini section
 * for it inside the jail. `log` receives each step as a line of prose.
 * `options` picks other sections and another in-jail shell (e.g.
 * `{ sections: ["basicshell"], shell: "/bin/sh" }` for a shell account).
 *
 * @example
 * ```ts
 * const account = await jailedAccount(await testSite());
 * try { ... } finally { await account.remove(); }
 * ```
 */
export async function jailedAccount(
  site: Site,
  log: (line: string) => void = () => {},
  options: AccountOptions = {},
): Promise<JailedAccount> {
  const jail = await scratchDir("jail");
  const sections = options.sections ?? ["jk_lsh", "sftp", "scp", "rsync"];
  const shell = options.shell === undefined ? [] : ["-s", options.shell];
  let user: TestUser | undefined;
  try {
    log(`jk_init -j ${jail} ${sections.join(" ")}`);
    await mustRun("jk_init", ["-j", jail, ...sections]);

    user = await createUser();
    // sshd without PAM refuses a locked account ("!" in /etc/shadow); "*" has no password at all.
    await runCommand("usermod", ["-p", "*", user.name]);
    log(`jk_jailuser -n -m ${[...shell, ""].join(" ")}-j ${jail} ${user.name}`);
    await mustRun("jk_jailuser", ["-n", "-m", ...shell, "-j", jail, user.name]);

    const lshIni = `${jail}${site.sysconfdir}/jk_lsh.ini`;
    if (options.shell === undefined) {
      log(`allow sftp-server, scp and rsync for ${user.name} in ${lshIni}`);
      const shipped = await Deno.readTextFile(lshIni).catch(() => "");
      await Deno.writeTextFile(lshIni, shipped + "\n" + transferSection(user.name));
    }
    const account: JailedAccount = {
      user,
      jail,
      home: `${jail}/home/${user.name}`,
      lshIni,
      remove: async () => {
        await user!.remove();
        await Deno.remove(jail, { recursive: true }).catch(() => {});
      },
    };
    return account;
  } catch (e) {
    await user?.remove();
    await Deno.remove(jail, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** Whether the jail holds the dev runtime jk_lsh needs (a compiled install needs none). */
export async function jailHasLshRuntime(site: Site, jail: string): Promise<boolean> {
  try {
    await Deno.stat(`${jail}${libDir(site)}/deno`);
    return true;
  } catch {
    return false;
  }
}

/** A running private sshd and what a client needs to reach it. */
export interface TestSshd {
  port: number;
  /** `ssh`/`sftp`/`scp` options: key, port, no host-key prompts, no user config. */
  clientOptions: string[];
  /** The same for `scp` and `sftp`, which spell the port `-P`. */
  copyOptions: string[];
  /** `rsync -e` value. */
  rsyncShell: string;
  /** What sshd wrote to stderr so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/** Whether Debian's OpenSSH server is installed. */
export async function sshdAvailable(): Promise<boolean> {
  try {
    return (await Deno.stat("/usr/sbin/sshd")).isFile && (await Deno.stat(SFTP_SERVER)).isFile;
  } catch {
    return false;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Starts `/usr/sbin/sshd -D -e` on 127.0.0.1 with its own config, host key
 * and pid file in a scratch directory, for `account` only, key
 * authentication only, `UsePAM no`, and `Subsystem sftp` through the login
 * shell (internal-sftp would bypass jk_chrootsh). The client key is placed in
 * the jailed home's `.ssh/authorized_keys`, which sshd reads through the
 * `JAIL/./home/NAME` path of the host account. `options.extraConfig` lines
 * come first in sshd_config, so they override the defaults (sshd keeps the
 * first value of a keyword), e.g. `["AcceptEnv *"]`.
 *
 * @example
 * ```ts
 * const sshd = await startSshd(account);
 * try { await runCommand("ssh", [...sshd.clientOptions, `${name}@127.0.0.1`, "rsync --version"]); }
 * finally { await sshd.stop(); }
 * ```
 */
export async function startSshd(
  account: JailedAccount,
  options: { extraConfig?: string[] } = {},
): Promise<TestSshd> {
  const dir = await scratchDir("sshd");
  const keygen = async (file: string) => {
    const r = await runCommand("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
    if (r.code !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  };
  await keygen(`${dir}/host_key`);
  await keygen(`${dir}/client_key`);

  const { user, home } = account;
  const ssh = `${home}/.ssh`;
  await Deno.mkdir(ssh, { mode: 0o700 });
  await Deno.copyFile(`${dir}/client_key.pub`, `${ssh}/authorized_keys`);
  await Deno.chmod(ssh, 0o700);
  await Deno.chmod(`${ssh}/authorized_keys`, 0o600);
  await Deno.chown(ssh, user.uid, user.gid);
  await Deno.chown(`${ssh}/authorized_keys`, user.uid, user.gid);

  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      ...(options.extraConfig ?? []),
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      `PidFile ${dir}/sshd.pid`,
      "UsePAM no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "AuthorizedKeysFile .ssh/authorized_keys",
      "StrictModes yes",
      `AllowUsers ${user.name}`,
      "PermitRootLogin no",
      "PermitUserEnvironment no",
      "AllowTcpForwarding no",
      "AllowAgentForwarding no",
      "X11Forwarding no",
      "PrintMotd no",
      "LogLevel VERBOSE",
      `Subsystem sftp ${SFTP_SERVER}`,
      "",
    ].join("\n"),
  );
  // sshd's privilege-separation directory; Debian's unit creates it at boot.
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });

  const child = new Deno.Command("/usr/sbin/sshd", {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) log += dec.decode(chunk, { stream: true });
  })();

  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await reading.catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  // Ready when it accepts a connection.
  for (let tries = 0;; tries++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (tries > 100) {
        await stop();
        throw new Error(`sshd did not start:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  const common = [
    "-F",
    "/dev/null",
    "-i",
    `${dir}/client_key`,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
  ];
  return {
    port,
    clientOptions: [...common, "-p", String(port)],
    copyOptions: [...common, "-P", String(port)],
    rsyncShell: ["ssh", ...common, "-p", String(port)].join(" "),
    log: () => log,
    stop,
  };
}
