/**
 * The one table of jailkit's tools: where each entry point lives, where it is
 * installed, whether it sits behind the privileged trampoline, and the exact
 * Deno permissions it runs with.
 *
 * `build.ts` turns each row into a `deno compile` command, and `src/install.ts`
 * turns the same row into a dev launcher that runs `deno run` with the same
 * flags, so the tests exercise exactly what a compiled binary would bake.
 *
 * Rules every row follows:
 * - every path in a permission is absolute (Deno resolves relative paths and
 *   bare `--allow-run` names at run time, against the caller's cwd and PATH);
 * - every tool gets `--no-prompt` (a prompt would let the person at the
 *   terminal grant themselves permissions);
 * - every tool gets `--no-code-cache`: a compiled binary keeps its V8 code
 *   cache at `$TMPDIR/deno-compile-<name>.cache`, which any local user can
 *   create first in /tmp, and root runs most of these tools (a forged cache
 *   is code execution); the few milliseconds it saves are not worth that;
 * - `--allow-ffi` and `--allow-run` amount to everything: Deno documents both as
 *   equivalent to `--allow-all`. Rows that need them say why.
 *
 * @module
 */

import { parseIni } from "./ini.ts";
import { iniPath, libDir, lshLogSocket, type Site, toolPath } from "./site.ts";

// Lives in site.ts (jk_lsh needs it without loading this table); kept importable from here.
export { lshLogSocket };

/** One tool of the suite. */
export interface Tool {
  /** Installed name, e.g. `jk_list`. */
  name: string;
  /** Entry module, relative to the repository root. */
  entry: string;
  /** Installation directory below the prefix. */
  dir: "usr/sbin" | "usr/bin";
  /**
   * Installed behind the setuid-root (or file-capability) trampoline
   * `shells/trampoline.c`; the Deno program itself never carries the bit.
   */
  privileged: boolean;
  /** Deno permission flags for a site; absolute paths only. */
  permissions: (site: Site) => string[];
  /** `--unstable-*` features the tool needs, e.g. `net` for datagram sockets. */
  unstable?: string[];
  /** V8 flags baked in with `--v8-flags`, e.g. `--jitless`; measured, and said why in `why`. */
  v8Flags?: string[];
  /**
   * Why a dev install runs this tool from its sources rather than from a
   * one-file bundle of them (src/install.ts); absent for bundled tools.
   */
  unbundled?: string;
  /** Why the tool needs what it has, for the reader of this table. */
  why: string;
}

/**
 * Every tool, in installation order.
 *
 * @example
 * ```ts
 * import { TOOLS } from "./tools.ts";
 * console.log(TOOLS.map((t) => t.name).join(" "));
 * ```
 */
export const TOOLS: readonly Tool[] = [
  {
    name: "jk_list",
    entry: "src/jk_list.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => ["--allow-all"],
    why: "reads /proc/<pid>/root, exe and cmdline of every process; Deno refuses " +
      "/proc to anything short of --allow-all (even --allow-read=/proc), so the " +
      "alternatives are --allow-all or --allow-ffi, which Deno itself documents as " +
      "equivalent. The program only reads.",
  },
  {
    name: "jk_lsh",
    entry: "shells/jk_lsh.ts",
    dir: "usr/sbin",
    privileged: false,
    unstable: ["net"],
    v8Flags: ["--jitless"],
    permissions: (site) => {
      const fence = lshFence();
      const log = lshLogSocket(site);
      return [
        `--allow-read=${
          [iniPath(site, "jk_lsh"), "/etc/passwd", "/etc/group", ...fence].join(",")
        }`,
        `--allow-run=${fence.join(",")}`,
        "--allow-env=USER",
        "--allow-sys",
        `--allow-net=unix:${log}`,
        `--allow-write=${log}`,
      ];
    },
    why: "the limited shell, run as the user (inside the jail): reads its ini and the " +
      "passwd/group files, stats and runs only the programs of its fence (lshFence: the " +
      "transfer tools at Debian and RHEL paths plus every executables entry of " +
      "config/jk_lsh.ini at build time) — the ini is the inner fence, this list the outer. " +
      "USER selects among accounts sharing a uid, as in jailkit. --allow-sys is unscoped " +
      "because Deno.umask accepts nothing narrower (it also covers uid/gid). Logs by " +
      "datagram to lshLogSocket(site), a symlink to the log socket, since Deno refuses " +
      "/dev/log short of --allow-all. No FFI. --jitless: jk_lsh waits beside the transfer " +
      "for the whole session, so its resident size is the login's peak; V8 without its " +
      "compilers keeps about 2.5 MiB less, no slower for this little code, and makes no " +
      "executable memory at run time (no WebAssembly, which jk_lsh never uses).",
  },
  {
    name: "jk_chrootsh",
    entry: "shells/jk_chrootsh.ts",
    dir: "usr/sbin",
    privileged: true,
    v8Flags: ["--jitless"],
    permissions: () => ["--allow-ffi", "--allow-read"],
    why: "the chroot login shell, setuid root (or --caps) behind the trampoline. FFI for " +
      "chroot, setgroups/setresgid/setresuid, capabilities, prctl, the caller's environment " +
      "on fd 3, syslog to the site's log socket and execve — FFI amounts to everything. " +
      "Reads are unscoped because the jail is wherever the user's passwd home says: the jail, " +
      "every ancestor, the home and its parents are lstat'ed, then the jail's /etc/passwd and " +
      "/etc/group and the shell, after chroot. No env, no write, no run, no net.",
  },
  {
    name: "jk_jailuser",
    entry: "src/jk_jailuser.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => [
      "--allow-read",
      "--allow-write",
      "--allow-run=/usr/sbin/usermod,/usr/bin/cp,/usr/bin/find",
      "--allow-sys=uid",
    ],
    why: "run by root to move accounts into a jail: reads /etc/passwd and /etc/group, and " +
      "reads and writes the jail's etc/passwd, etc/group and home directories, which may be " +
      "anywhere; usermod changes the host account (its locking and nscd handling); cp and " +
      "find move the home as the user, never as root (--allow-run amounts to everything). " +
      "uid: refuses to run as anyone but root.",
  },
  {
    name: "jk_init",
    entry: "src/jk_init.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => [
      "--allow-ffi",
      "--allow-read",
      "--allow-write",
      "--allow-env=PATH",
      "--allow-sys=uid",
    ],
    why: "run by root to build jails: the copy engine writes into the jail only through FFI " +
      "(openat2 RESOLVE_IN_ROOT or an O_NOFOLLOW walk, O_TMPFILE + linkat, mknodat for " +
      "devices, fchown), which Deno's file API cannot do, and FFI amounts to everything. " +
      "Reads are unscoped because sections name any host file; writes cover the new jail " +
      "directory and the site's jk_socketd.ini; PATH finds bare program names; uid: refuses " +
      "to build unless root. No run, no net.",
  },
  {
    name: "jk_cp",
    entry: "src/jk_cp.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => ["--allow-ffi", "--allow-read", "--allow-env=PATH"],
    why: "run by root to copy files into a jail. Every jail write goes through FFI: paths are " +
      "resolved from a descriptor of the jail root (openat2 RESOLVE_IN_ROOT, or an O_NOFOLLOW " +
      "walk), files are made with O_TMPFILE + linkat, devices with mknodat, owners with " +
      "fchown/fchownat — Deno's own file API cannot open relative to a directory fd — and FFI " +
      "amounts to everything. Host stats and device nodes go through FFI too (Deno refuses " +
      "/dev short of --allow-all). Reads are unscoped: the admin names any host file, and ELF " +
      "headers and /etc/ld.so.cache are read to find libraries. PATH finds bare names. No " +
      "--allow-write (nothing is written through Deno), no run (never ldd), no net.",
  },
  {
    name: "jk_update",
    entry: "src/jk_update.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => ["--allow-ffi", "--allow-read"],
    why: "run by root to refresh a jail from the host: compares, replaces and removes jail " +
      "files only through FFI on descriptors of the jail (openat2 RESOLVE_IN_ROOT or an " +
      "O_NOFOLLOW walk, O_TMPFILE + linkat, renameat2, unlinkat), which Deno's file API cannot " +
      "do; FFI amounts to everything. Reads are unscoped: its ini, every host file it compares " +
      "with, ELF headers and /etc/ld.so.cache. No write through Deno, no env, no run, no net.",
  },
  {
    name: "jk_socketd",
    entry: "src/jk_socketd.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: (site) => [
      "--allow-ffi",
      `--allow-read=${site.sysconfdir},${socketdRoot(site)}`,
      `--allow-run=${libDir(site)}/deno,${toolPath(site, "usr/sbin", "jk_socketd")}`,
    ],
    why: "run by root as the jails' /dev/log. FFI because Deno's datagram API has no " +
      "ancillary data (SO_PASSCRED/SCM_CREDENTIALS attribute each message to its sender; " +
      "SCM_RIGHTS hands the chrooted relay a new log connection), refuses /dev/log short of " +
      "--allow-all, and cannot bind by directory fd, chroot, setgroups/setresgid/setresuid or " +
      "poll; FFI amounts to everything. Reads: its ini and config directory, and the empty " +
      "directory the relay chroots into (socketdRoot). Run: itself only — Deno cannot fork, " +
      "so the daemon and its unprivileged relay are new copies of the same executable (the " +
      "dev runtime or the compiled binary). No env, no write through Deno, no net.",
  },
  {
    name: "jk_check",
    entry: "src/jk_check.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => ["--allow-read"],
    unbundled: "its worker threads are started from a module URL (src/check/jobs.ts) and " +
      "node:fs is loaded only for jails that need it; a bundle would break the first and " +
      "load the second at every start",
    why: "audits jails: reads every jail wherever its config or a /./ home puts it, the " +
      "host file of every path it compares, its ini and /etc/passwd, so reads cannot be " +
      "narrowed to a list. Read only: no write, run, ffi, env, sys or net. /proc stays closed " +
      "(Deno opens it only with --allow-all), so the protected_* sysctls and file " +
      "capabilities are reported as not checked rather than widening this.",
  },
  {
    name: "jk_chrootlaunch",
    entry: "src/jk_chrootlaunch.ts",
    dir: "usr/sbin",
    privileged: false,
    permissions: () => ["--allow-ffi", "--allow-read", "--allow-env"],
    why: "run by root to start a daemon in a jail. FFI for chroot, setgroups/setresgid/" +
      "setresuid, prctl(no_new_privs), the pidfile (O_NOFOLLOW), syslog and execve — FFI " +
      "amounts to everything. Reads are unscoped: the jail may be anywhere, and it, its " +
      "system directories and every ancestor are lstat'ed, then the executable and its " +
      "directories inside the jail after chroot. Env: the daemon gets the caller's " +
      "environment, as in jailkit. No write through Deno, no run, no net.",
  },
  {
    name: "jk_uchroot",
    entry: "shells/jk_uchroot.ts",
    dir: "usr/bin",
    privileged: true,
    permissions: () => ["--allow-ffi", "--allow-read"],
    why: "lets listed users run a program in a listed jail, setuid root (or --caps) behind " +
      "the trampoline. FFI for chroot, setgroups/setresgid/setresuid, capabilities, prctl, " +
      "the caller's environment on fd 3, syslog and execve — FFI amounts to everything. " +
      "Reads are unscoped because the allowed jails are wherever its ini says: the jail and " +
      "every ancestor are lstat'ed, then the jail's /etc/passwd, /etc/group and the " +
      "executable, after chroot and the drop. No env, no write, no run, no net.",
  },
  {
    name: "jk_procmailwrapper",
    entry: "shells/jk_procmailwrapper.ts",
    dir: "usr/sbin",
    privileged: true,
    permissions: () => ["--allow-ffi", "--allow-read"],
    why: "the MTA's delivery command, setuid root (or --caps) behind the trampoline: runs " +
      "procmail as the recipient, in their jail if their home says so. FFI for chroot, " +
      "setgroups/setresgid/setresuid, capabilities, prctl, the MTA's environment on fd 3, " +
      "syslog and execve — FFI amounts to everything. Reads are unscoped because the jail is " +
      "wherever the user's home says: the jail, its ancestors and the home are lstat'ed, then " +
      "the jail's /etc/passwd, /etc/group and procmail after chroot. No env, no write, no " +
      "run, no net.",
  },
];

/**
 * Looks a tool up by name.
 *
 * @example
 * ```ts
 * findTool("jk_list")?.dir; // "usr/sbin"
 * ```
 */
export function findTool(name: string): Tool | undefined {
  return TOOLS.find((t) => t.name === name);
}

/**
 * Flags shared by `deno run` and `deno compile` for one tool: prompt off, code
 * cache off, unstable features, V8 flags, then the permissions.
 *
 * @example
 * ```ts
 * toolFlags(findTool("jk_list")!, { prefix: "", sysconfdir: "/etc/jailkit" });
 * // ["--no-prompt", "--no-code-cache", "--allow-all"]
 * ```
 */
export function toolFlags(tool: Tool, site: Site): string[] {
  const flags = ["--no-prompt"];
  flags.push("--no-code-cache");
  for (const feature of tool.unstable ?? []) flags.push(`--unstable-${feature}`);
  if (tool.v8Flags?.length) flags.push(`--v8-flags=${tool.v8Flags.join(",")}`);
  flags.push(...tool.permissions(site));
  return flags;
}

/** Flags that keep Deno from reading a deno.json, a lock file or the network. */
const HERMETIC = ["--no-config", "--no-lock", "--no-remote", "--no-npm"];

/**
 * Arguments for `deno compile` of one tool into `output`.
 *
 * @example
 * ```ts
 * compileArgs(findTool("jk_list")!, site, "/src/src/jk_list.ts", "dist/jk_list");
 * ```
 */
export function compileArgs(tool: Tool, site: Site, entry: string, output: string): string[] {
  return ["compile", ...HERMETIC, ...toolFlags(tool, site), "--output", output, entry];
}

/**
 * Arguments for `deno run` of one tool's source, as a dev launcher runs it:
 * the same flags as the compiled binary, plus `--cached-only` so nothing is
 * fetched or transpiled into a cache the caller controls.
 *
 * @example
 * ```ts
 * runArgs(findTool("jk_list")!, site, "/usr/lib/jailkit/src/jk_list.ts");
 * ```
 */
export function runArgs(tool: Tool, site: Site, entry: string): string[] {
  return ["run", ...HERMETIC, "--cached-only", ...toolFlags(tool, site), entry];
}

/** Permission helper: `--allow-read` of the named ini files of a site. */
export function readIni(site: Site, ...tools: string[]): string {
  return `--allow-read=${tools.map((t) => iniPath(site, t)).join(",")}`;
}

/**
 * The programs jk_lsh may start whatever its ini says, at their Debian/Ubuntu
 * and RHEL paths: sftp-server, scp, rsync and git's pack programs. Deno
 * matches `--allow-run` lexically, so `/bin/rsync` is not `/usr/bin/rsync`.
 */
export const LSH_DEFAULT_FENCE: readonly string[] = [
  "/usr/lib/openssh/sftp-server",
  "/usr/libexec/openssh/sftp-server",
  "/usr/bin/scp",
  "/usr/bin/rsync",
  "/usr/bin/git-upload-pack",
  "/usr/bin/git-receive-pack",
  "/usr/lib/git-core/git-upload-pack",
  "/usr/lib/git-core/git-receive-pack",
  "/usr/libexec/git-core/git-upload-pack",
  "/usr/libexec/git-core/git-receive-pack",
];

/**
 * jk_lsh's `--allow-run` fence: {@link LSH_DEFAULT_FENCE} plus every
 * `executables` entry of the repository's `config/jk_lsh.ini`, read when the
 * tools are built or installed. A site that needs another program adds it to
 * that file and reinstalls. Where the file is absent (a staged copy of the
 * sources), the default list alone. An entry that is not a clean absolute path
 * is an error: Deno would resolve it against PATH or the cwd at run time.
 *
 * @example
 * ```ts
 * lshFence().includes("/usr/bin/rsync"); // true
 * ```
 */
export function lshFence(config: URL = new URL("../config/jk_lsh.ini", import.meta.url)): string[] {
  const fence = new Set(LSH_DEFAULT_FENCE);
  let text: string;
  try {
    text = Deno.readTextFileSync(config);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [...fence];
    throw e;
  }
  const ini = parseIni(text, config.pathname);
  for (const section of ini.sections()) {
    for (const path of section.list("executables")) {
      if (!/^(\/[^/]+)+$/.test(path) || path.split("/").some((c) => c === "." || c === "..")) {
        const line = section.entry("executables")?.line;
        throw new Error(
          `${config.pathname}:${line}: executables entry ${path} is not a clean absolute path`,
        );
      }
      fence.add(path);
    }
  }
  return [...fence];
}

/**
 * The empty, root-owned directory jk_socketd's relay chroots into before it
 * drops to nobody: `PREFIX/usr/lib/jailkit/empty`. jk_socketd creates it
 * (0755) when missing and refuses it unless it is empty and only root can
 * write it and its ancestors.
 *
 * @example
 * ```ts
 * socketdRoot({ prefix: "", sysconfdir: "/etc/jailkit" }); // "/usr/lib/jailkit/empty"
 * ```
 */
export function socketdRoot(site: Site): string {
  return `${libDir(site)}/empty`;
}
