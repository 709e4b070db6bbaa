/**
 * Shared pieces of the adversarial suite: an attack program (C, static, so it
 * runs in any jail) with one escape attempt per subcommand, a shell account
 * jailed by the real tools, a host-only secret next to a directory the user
 * could write if they ever got out, and digests that prove nothing outside
 * changed.
 *
 * The account comes from tests/login_fixture.ts (`jk_init basicshell` and
 * `jk_jailuser -s /bin/sh`); the user enters the jail the way sshd makes them:
 * the installed setuid jk_chrootsh trampoline with `-c CMD`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  compileProgram,
  runCommand,
  type RunResult,
  scratchDir,
  testSite,
  toolPathUnderTest,
} from "../harness.ts";
import { treeDigest } from "../jailfixtures.ts";
import { type JailedAccount, jailedAccount } from "../login_fixture.ts";

/**
 * The attack program. Every step prints `name: ok`, `name: ERRNO` or
 * `name: read TEXT`, so a test reads exactly how far an attempt got. The
 * first line is always `uids: REAL EFFECTIVE SAVED`. `exec ENVFILE PROGRAM
 * ARGS…` is the odd one out: a launcher with a raw environment.
 */
const ATTACK_SOURCE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errname(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "EUNKNOWN";
}

static int report(const char *what, int failed) {
  if (failed) printf("%s: %s\n", what, errname(errno));
  else printf("%s: ok\n", what);
  fflush(stdout);
  return failed;
}

/* Reads a file and prints its first line: the proof of a read. */
static void grab(const char *label, int dirfd, const char *path) {
  int fd = openat(dirfd, path, O_RDONLY);
  if (fd < 0) {
    report(label, 1);
    return;
  }
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int saved = errno;
  close(fd);
  errno = saved;
  if (n < 0) {
    report(label, 1);
    return;
  }
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  printf("%s: read %s\n", label, buf);
  fflush(stdout);
}

/* Creates a file: the proof of a write. */
static void plant(int dirfd, const char *path) {
  int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (!report("plant", fd < 0)) close(fd);
}

/* Walks ".." as far as it goes: out of a chroot whose root is not above the cwd. */
static void climb(void) {
  for (int i = 0; i < 128; i++) {
    if (chdir("..") != 0) break;
  }
}

/* The double chroot: a new root below the cwd, ".." up past it, chroot(".")
 * (firejail's unchroot.c). Needs CAP_SYS_CHROOT. */
static void double_chroot(const char *secret, const char *proof) {
  mkdir("jkx", 0700);
  if (report("chroot", chroot("jkx") != 0)) return;
  climb();
  if (report("chroot-dot", chroot(".") != 0)) return;
  grab("secret", AT_FDCWD, secret);
  plant(AT_FDCWD, proof);
}

/* execve with the environment exactly as a file of NUL-terminated entries gives
 * it: entries without "=", duplicates and any bytes, which no shell can pass. */
static int exec_raw_env(const char *file, char **argv) {
  static char data[4 << 20];
  static char *envp[65536];
  int fd = open(file, O_RDONLY);
  if (fd < 0) return 126;
  ssize_t n, len = 0;
  while ((n = read(fd, data + len, sizeof data - 1 - len)) > 0) len += n;
  close(fd);
  size_t count = 0;
  for (ssize_t at = 0; at < len && count < 65535; at += strlen(data + at) + 1) envp[count++] = data + at;
  envp[count] = NULL;
  execve(argv[0], argv, envp);
  return 127;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *cmd = argv[1];
  if (!strcmp(cmd, "exec") && argc >= 4) return exec_raw_env(argv[2], argv + 3);
  uid_t r, e, s;
  getresuid(&r, &e, &s);
  printf("uids: %d %d %d\n", (int)r, (int)e, (int)s);
  fflush(stdout);
  if (!strcmp(cmd, "chroot") && argc == 4) {
    double_chroot(argv[2], argv[3]);
  } else if (!strcmp(cmd, "userns") && argc == 4) {
    /* A new user namespace holds every capability in it, CAP_SYS_CHROOT too. */
    if (!report("unshare-user", unshare(CLONE_NEWUSER) != 0)) double_chroot(argv[2], argv[3]);
    report("unshare-mount", unshare(CLONE_NEWNS) != 0);
  } else if (!strcmp(cmd, "fds") && argc == 4) {
    /* Every inherited directory fd: fchdir to it, climb, use relative paths. */
    int found = 0;
    for (int fd = 0; fd < 1024; fd++) {
      struct stat st;
      if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
      found++;
      printf("dirfd: %d\n", fd);
      if (report("fchdir", fchdir(fd) != 0)) continue;
      climb();
      grab("secret", AT_FDCWD, argv[2] + 1);
      plant(AT_FDCWD, argv[3] + 1);
    }
    if (!found) printf("dirfds: none\n");
  } else if (!strcmp(cmd, "handle") && argc == 4) {
    /* open_by_handle_at ("shocker"): ext4's root directory is inode 2, generation 0. */
    struct file_handle *h = calloc(1, sizeof *h + 8);
    unsigned int ino_gen[2] = {2, 0};
    h->handle_bytes = 8;
    h->handle_type = 1; /* FILEID_INO32_GEN */
    memcpy(h->f_handle, ino_gen, sizeof ino_gen);
    int mount = open("/", O_RDONLY | O_DIRECTORY);
    int fd = open_by_handle_at(mount, h, O_RDONLY | O_DIRECTORY);
    if (!report("open_by_handle_at", fd < 0)) {
      grab("secret", fd, argv[2] + 1);
      plant(fd, argv[3] + 1);
    }
  } else if (!strcmp(cmd, "read")) {
    for (int i = 2; i < argc; i++) grab(argv[i], AT_FDCWD, argv[i]);
  } else if (!strcmp(cmd, "ptrace") && argc == 3) {
    pid_t pid = (pid_t)atoi(argv[2]);
    if (!report("ptrace-attach", ptrace(PTRACE_ATTACH, pid, 0, 0) != 0)) {
      int status;
      waitpid(pid, &status, __WALL);
      /* A register of the stopped process: its memory and state are the tracer's. */
      errno = 0;
      ptrace(PTRACE_PEEKUSER, pid, offsetof(struct user, regs.rip), 0);
      report("ptrace-peek", errno != 0);
      report("ptrace-detach", ptrace(PTRACE_DETACH, pid, 0, 0) != 0);
    }
  } else if (!strcmp(cmd, "kill") && argc == 4) {
    report("kill", kill((pid_t)atoi(argv[2]), atoi(argv[3])) != 0);
  } else {
    return 2;
  }
  return 0;
}
`;

let built: Promise<string> | undefined;

/**
 * Builds the attack program once per test process (statically linked, so it
 * needs nothing from the jail) and returns its path.
 *
 * @example
 * ```ts
 * const program = await attackProgram();
 * ```
 */
export function attackProgram(): Promise<string> {
  built ??= compileProgram("jkattack", ATTACK_SOURCE, ["-static", "-O1", "-Wall", "-Werror"]);
  return built;
}

/** Where the attack program sits in a jail, plain and (as an admin's mistake) setuid root. */
export const IN_JAIL = "/usr/bin/jkattack", IN_JAIL_SUID = "/usr/bin/jkattack-suid";

/**
 * Copies the attack program into the jail at {@link IN_JAIL} (0755) and
 * {@link IN_JAIL_SUID} (root, 04755).
 *
 * @example
 * ```ts
 * await plantAttack(account.jail);
 * ```
 */
export async function plantAttack(jail: string): Promise<void> {
  const program = await attackProgram();
  for (const [path, mode] of [[IN_JAIL, 0o755], [IN_JAIL_SUID, 0o4755]] as const) {
    await Deno.copyFile(program, `${jail}${path}`);
    await Deno.chown(`${jail}${path}`, 0, 0);
    await Deno.chmod(`${jail}${path}`, mode);
  }
}

/**
 * A shell account: `jk_init -j JAIL basicshell`, `jk_jailuser -n -m -s
 * /bin/sh`, and the attack program planted in the jail.
 *
 * @example
 * ```ts
 * const account = await shellAccount();
 * try { ... } finally { await account.remove(); }
 * ```
 */
export async function shellAccount(): Promise<JailedAccount> {
  const account = await jailedAccount(await testSite(), undefined, {
    sections: ["basicshell"],
    shell: "/bin/sh",
  });
  try {
    await plantAttack(account.jail);
    return account;
  } catch (e) {
    await account.remove();
    throw e;
  }
}

/** A host directory outside every jail, owned by the user, holding a secret only the host has. */
export interface Outside {
  dir: string;
  /** A world-readable file with {@link Outside.token} in it. */
  secret: string;
  token: string;
  /** The file an escaped attack would create (it must never exist). */
  proof: string;
  /** Digest of the directory: any change shows. */
  digest(): Promise<string>;
  remove(): Promise<void>;
}

/**
 * Makes the outside directory. The user owns it and may read the secret, so
 * if an attack fails, the jail stopped it, not the file's permissions.
 *
 * @example
 * ```ts
 * const out = await outside(account.user.uid, account.user.gid);
 * ```
 */
export async function outside(uid: number, gid: number): Promise<Outside> {
  const base = await scratchDir("outside");
  const dir = `${base}/host-only`;
  await Deno.mkdir(dir, { mode: 0o755 });
  await Deno.chown(dir, uid, gid);
  const token = `host-secret-${crypto.randomUUID()}`;
  const secret = `${dir}/secret`;
  await Deno.writeTextFile(secret, token + "\n", { mode: 0o644 });
  await Deno.chmod(secret, 0o644);
  return {
    dir,
    secret,
    token,
    proof: `${dir}/escaped`,
    digest: () => treeDigest(base),
    remove: () => Deno.remove(base, { recursive: true }),
  };
}

/**
 * A digest of what an escape would go for on the host: the passwd, shadow
 * and group lines of `names` (only those, so that accounts other tests add
 * meanwhile do not count), and the files that grant root or run code as
 * root: sudoers, ld.so.preload, root's authorized_keys, crontab.
 *
 * @example
 * ```ts
 * const before = await hostFilesDigest(["root", account.user.name]);
 * ```
 */
export async function hostFilesDigest(names: string[] = ["root"]): Promise<string> {
  const lines = [];
  for (const path of ["/etc/passwd", "/etc/shadow", "/etc/group"]) {
    const text = await Deno.readTextFile(path);
    lines.push(...text.split("\n").filter((l) => names.includes(l.split(":")[0])));
  }
  for (
    const path of [
      "/etc/sudoers",
      "/etc/ld.so.preload",
      "/root/.ssh/authorized_keys",
      "/etc/crontab",
    ]
  ) {
    const bytes = await Deno.readFile(path).catch(() => null);
    lines.push(`${path} ${bytes ? createHash("sha256").update(bytes).digest("hex") : "absent"}`);
  }
  return lines.join("\n");
}

/**
 * Runs a bash script as the account's user on the host, with a small clean
 * environment. The script typically sets up fds, limits or signals and then
 * `exec`s the trampoline, as a login would.
 *
 * @example
 * ```ts
 * await asUser(account, `exec 5</; exec ${chrootsh} -c 'id'`);
 * ```
 */
export function asUser(
  account: JailedAccount,
  script: string,
  opts: { stdin?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return runCommand("/usr/bin/bash", ["-c", script], {
    uid: account.user.uid,
    gid: account.user.gid,
    env: opts.env ?? { PATH: "/usr/bin:/bin", LANG: "C" },
    stdin: opts.stdin,
    cwd: "/",
  });
}

/** The installed setuid jk_chrootsh trampoline. */
export function chrootsh(): Promise<string> {
  return toolPathUnderTest("jk_chrootsh");
}

/** Quotes one word for bash. */
export function shq(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

/**
 * Logs in like sshd does (`jk_chrootsh -c COMMAND`), after `prelude` (bash
 * run as the user just before the exec).
 *
 * @example
 * ```ts
 * const r = await login(account, "/usr/bin/jkattack chroot /x /y");
 * ```
 */
export async function login(
  account: JailedAccount,
  command: string,
  prelude = "",
): Promise<RunResult> {
  return asUser(account, `${prelude} exec ${await chrootsh()} -c ${shq(command)}`);
}

/**
 * The `name: value` lines of the attack program's output, as a map (a later
 * line of the same name wins).
 *
 * @example
 * ```ts
 * steps("chroot: EPERM\n").get("chroot"); // "EPERM"
 * ```
 */
export function steps(stdout: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const at = line.indexOf(": ");
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 2));
  }
  return out;
}
