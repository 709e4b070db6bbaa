/**
 * The privileged start and the drop: the steps a jailkit tool behind the
 * setuid or file-capability trampoline (`shells/trampoline.c`) takes between
 * "the kernel made us powerful" and "execve of the user's program".
 *
 * Each step is one small function that does one thing and then checks that it
 * happened, because a set*id or chroot call that silently did less than asked
 * is how jails are escaped. The order a tool calls them in is the order of
 * peers-and-threats §5.10 (OpenSSH `permanently_set_uid`, bubblewrap):
 *
 * 1. `hardenProcess()` — not dumpable, no core file, while privileged;
 * 2. `privilegeMode()` — setuid root or exactly the three capabilities, and a
 *    caller that is not root;
 * 3. `resolveHostIdentity(uid)` — the caller's name, groups and home from the
 *    host's user database, before chroot (never from `USER`);
 * 4. `callerEnvironment()` — the caller's environment, as data, from fd 3;
 * 5. `enterJail(jail)` — chdir, chroot, chdir, and prove `/` is the jail;
 * 6. `dropTo(identity)` — setgroups, setresgid, setresuid, no capabilities,
 *    and prove none of it can be undone;
 * 7. `setNoNewPrivs()` — setuid files and file capabilities inside the jail
 *    stop working;
 * 8. `prepareExec()` — default signal dispositions, empty mask, every fd above
 *    2 close-on-exec, the caller's core limit back;
 * 9. `execOrDie(path, argv, env)` — execve through FFI, so that no Deno
 *    process stays behind; on failure, a message and `_exit`.
 *
 * Threads. Deno runs several threads. ids and groups are changed through
 * glibc, which applies them to every thread; chroot and chdir act on the fs
 * state all threads share. capset, `no_new_privs`, the signal mask and the
 * checks below act on the calling thread, which is the thread that calls
 * execve. The other threads lose their capabilities through setresuid (see
 * `dropTo`), in a `--caps` install as in a setuid one.
 *
 * Every function throws a `PrivilegeError` naming its step and a `reason`,
 * which the tool turns into its documented exit code and log line.
 *
 * @module
 */

import {
  ambientCapabilities,
  capabilities,
  chdir,
  chroot,
  clearAmbientCapabilities,
  clearCapabilities as capsetZero,
  close,
  CLOSE_RANGE_CLOEXEC,
  closeRange,
  EPERM,
  errnoName,
  execve,
  exitNow,
  fchdir,
  fstat,
  getgrgid,
  getgrouplist,
  getgroups,
  getNoNewPrivs,
  getpwuid,
  getresgid,
  getresuid,
  getrlimit,
  LibcError,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  open,
  probeSetgroups,
  probeSetIds,
  read,
  readTrampolineEnvironment,
  resetAllSignals,
  type Rlimit,
  RLIMIT_CORE,
  setDumpable,
  setgroups,
  setNoNewPrivs as prctlNoNewPrivs,
  setresgid,
  setresuid,
  setrlimit,
  setSignalMask,
  write,
} from "./libc.ts";

/** The step of the sequence a `PrivilegeError` comes from. */
export type Step =
  | "harden"
  | "privilege"
  | "identity"
  | "jail"
  | "drop"
  | "capabilities"
  | "no_new_privs"
  | "exec";

/**
 * A step that failed or could not be verified. `reason` is a stable word a
 * tool maps to its exit code (e.g. jk_chrootsh: `chdir` → 19, `chroot` → 33).
 */
export class PrivilegeError extends Error {
  /**
   * @param step the step of the sequence
   * @param reason a stable word for the failure, e.g. `setresuid` or `root-caller`
   * @param message one line, naming the path, id or call concerned
   * @example
   * ```ts
   * throw new PrivilegeError("jail", "chroot", `chroot("/srv/jail") failed: EPERM`);
   * ```
   */
  constructor(readonly step: Step, readonly reason: string, message: string) {
    super(message);
    this.name = "PrivilegeError";
  }
}

/** The message of a libc failure, or of anything else thrown. */
function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs one system call; a failure becomes a `PrivilegeError` of `step`/`reason`. */
function attempt<T>(step: Step, reason: string, call: () => T): T {
  try {
    return call();
  } catch (e) {
    if (e instanceof PrivilegeError) throw e;
    throw new PrivilegeError(step, reason, describe(e));
  }
}

// ---------------------------------------------------------------------------
// 1. Before anything else

/** What `hardenProcess` changed, for `prepareExec` to give back. */
export interface Hardening {
  /** The caller's RLIMIT_CORE, restored for the program we exec. */
  coreLimit: Rlimit;
}

/**
 * Makes the process undumpable and its core limit zero while it holds
 * privileges: the kernel already marks a setuid process undumpable, but not a
 * process that got its capabilities through the ambient set (the `--caps`
 * install), and a core file of a privileged process may hold secrets. Returns
 * the caller's core limit so the jailed program gets it back.
 *
 * @example
 * ```ts
 * const hardening = hardenProcess();
 * // ...
 * prepareExec(hardening);
 * ```
 */
export function hardenProcess(): Hardening {
  return attempt("harden", "harden", () => {
    setDumpable(false);
    const coreLimit = getrlimit(RLIMIT_CORE);
    setrlimit(RLIMIT_CORE, 0n, coreLimit.hard);
    return { coreLimit };
  });
}

// ---------------------------------------------------------------------------
// 2. Where the privilege comes from

/** Capability numbers the `--caps` trampoline raises (linux/capability.h). */
export const CAP_SETGID = 6, CAP_SETUID = 7, CAP_SYS_CHROOT = 18;

/** The capabilities of a `--caps` install, as a mask. */
export const TRAMPOLINE_CAPABILITIES = (1n << BigInt(CAP_SETGID)) |
  (1n << BigInt(CAP_SETUID)) | (1n << BigInt(CAP_SYS_CHROOT));

/** How the process is privileged, and who called it. */
export interface Privilege {
  /** `setuid`: effective uid 0. `caps`: the caller's uid with the three capabilities. */
  mode: "setuid" | "caps";
  /** The caller's real uid. */
  uid: number;
  /** The caller's real gid. */
  gid: number;
}

/**
 * Finds out how the process is privileged and refuses anything unexpected,
 * with reasons:
 * - `not-privileged`: neither effective uid 0 nor the capabilities (jailkit 11);
 * - `root-caller`: the real uid is 0 — root needs no jail and can leave one
 *   (jailkit 12);
 * - `unexpected-capabilities`: a non-root process with capabilities other than
 *   exactly cap_setgid, cap_setuid and cap_sys_chroot, which is not how the
 *   trampoline starts us (bubblewrap refuses this too);
 * - `mixed-ids`: effective and saved ids that are neither all root nor all
 *   the caller's.
 *
 * @example
 * ```ts
 * const { mode, uid, gid } = privilegeMode(); // { mode: "setuid", uid: 1000, gid: 1000 }
 * ```
 */
export function privilegeMode(): Privilege {
  const uids = attempt("privilege", "getresuid", getresuid);
  const gids = attempt("privilege", "getresgid", getresgid);
  const caps = attempt("privilege", "capget", capabilities);
  const who = { uid: uids.real, gid: gids.real };
  if (uids.effective === 0) {
    if (uids.saved !== 0) {
      throw new PrivilegeError("privilege", "mixed-ids", `saved uid ${uids.saved} is not 0`);
    }
    if (uids.real === 0) throw rootCaller();
    return { mode: "setuid", ...who };
  }
  if ((caps.effective & (1n << BigInt(CAP_SYS_CHROOT))) === 0n) {
    throw new PrivilegeError(
      "privilege",
      "not-privileged",
      `effective user ID is ${uids.effective}, not 0, and cap_sys_chroot is not effective`,
    );
  }
  if (uids.real === 0) throw rootCaller();
  if (caps.permitted !== TRAMPOLINE_CAPABILITIES || caps.effective !== TRAMPOLINE_CAPABILITIES) {
    throw new PrivilegeError(
      "privilege",
      "unexpected-capabilities",
      `expected exactly cap_setgid,cap_setuid,cap_sys_chroot, have permitted ` +
        `0x${caps.permitted.toString(16)} effective 0x${caps.effective.toString(16)}`,
    );
  }
  if (uids.effective !== uids.real || uids.saved !== uids.real) {
    throw new PrivilegeError(
      "privilege",
      "mixed-ids",
      `user ids ${uids.real}/${uids.effective}/${uids.saved} differ`,
    );
  }
  return { mode: "caps", ...who };
}

function rootCaller(): PrivilegeError {
  return new PrivilegeError("privilege", "root-caller", "the real user ID is 0 (root)");
}

// ---------------------------------------------------------------------------
// 3. Who the caller is

/** The caller as the host's user database knows them. */
export interface HostIdentity {
  uid: number;
  /** Primary gid from the passwd entry. */
  gid: number;
  name: string;
  /** Name of the primary group. */
  groupName: string;
  /** Home field, e.g. `/srv/jail/./home/alice`. */
  home: string;
  shell: string;
  /** Primary gid first, then every group listing the user, without duplicates. */
  groups: number[];
}

/**
 * Looks the caller up by uid in the host's user database (NSS) and computes
 * their groups with getgrouplist. Call it before chroot: afterwards glibc
 * would load NSS modules from inside the jail, which its owner may control.
 * The uid is the real uid from `privilegeMode`, never a name from `USER`:
 * the caller sets the environment. Reasons: `no-user`, `no-name`, `no-group`,
 * `lookup` (the database failed).
 *
 * @example
 * ```ts
 * const me = resolveHostIdentity(privilegeMode().uid);
 * me.groups; // [1000, 27, 100]
 * ```
 */
export function resolveHostIdentity(uid: number): HostIdentity {
  const pw = attempt("identity", "lookup", () => getpwuid(uid));
  if (pw === null) {
    throw new PrivilegeError("identity", "no-user", `no user with user ID ${uid}`);
  }
  if (pw.name === "") {
    throw new PrivilegeError("identity", "no-name", `empty user name for user ID ${uid}`);
  }
  const group = attempt("identity", "lookup", () => getgrgid(pw.gid));
  if (group === null) {
    throw new PrivilegeError("identity", "no-group", `no group with group ID ${pw.gid}`);
  }
  const groups = attempt("identity", "lookup", () => getgrouplist(pw.name, pw.gid));
  return {
    uid: pw.uid,
    gid: pw.gid,
    name: pw.name,
    groupName: group.name,
    home: pw.dir,
    shell: pw.shell,
    groups: [...new Set([pw.gid, ...groups])],
  };
}

// ---------------------------------------------------------------------------
// 4. The caller's environment

/**
 * The caller's environment as the trampoline handed it over on fd 3 (and fd 3
 * closed), or an empty map when there is none. Data for a tool's allowlist
 * only: the process itself runs with the trampoline's fixed environment, and a
 * privileged Deno process never reads its own.
 *
 * @example
 * ```ts
 * const term = callerEnvironment().get("TERM");
 * ```
 */
export function callerEnvironment(): Map<string, string> {
  return readTrampolineEnvironment() ?? new Map();
}

/** The process's own command line, as the kernel holds it. */
export interface CommandLine {
  /** argv[0]: the trampoline sets it to the tool's name, a login "-" kept. */
  argv0: string;
  /**
   * The caller's arguments as raw bytes. `Deno.args` has only their UTF-8
   * reading (a dev launcher's Deno replaces invalid bytes with U+FFFD), and a
   * shell must pass on exactly what it was given, e.g. a Latin-1 file name.
   */
  args: Uint8Array[];
}

/**
 * Every entry of /proc/self/cmdline as raw bytes, read through libc (Deno's
 * file API refuses /proc short of --allow-all): the runtime's own argv, which
 * in a dev launcher starts with `deno run` and its flags.
 *
 * @example
 * ```ts
 * processArgv().map((a) => new TextDecoder().decode(a)); // ["deno", "run", ..., "-v"]
 * ```
 */
export function processArgv(): Uint8Array[] {
  const fd = open("/proc/self/cmdline", O_RDONLY);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const buf = new Uint8Array(65536);
      const n = read(fd, buf);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
    }
  } finally {
    close(fd);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const entries: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < all.length; i++) {
    if (all[i] === 0) {
      entries.push(all.subarray(start, i));
      start = i + 1;
    }
  }
  return entries;
}

/**
 * argv[0] and the caller's arguments from `processArgv()`: the arguments are
 * its last `Deno.args.length` entries; before them a dev launcher puts Deno's
 * `run` flags and the entry.
 * Also replaces `node:process`'s argv0, whose import costs ~20 ms per start.
 *
 * @example
 * ```ts
 * const { argv0, args } = commandLine(); // "-jk_chrootsh", [bytes of "-c", bytes of "ls"]
 * ```
 */
export function commandLine(): CommandLine {
  const entries = processArgv();
  const count = Deno.args.length;
  if (entries.length < count + 1) {
    throw new PrivilegeError("identity", "internal", "cannot read the command line");
  }
  return {
    argv0: new TextDecoder().decode(entries[0]),
    args: entries.slice(entries.length - count),
  };
}

// ---------------------------------------------------------------------------
// 5. Into the jail

/** Device and inode of a directory, to recognise it after chroot. */
export interface DirectoryIdentity {
  dev: bigint;
  ino: bigint;
}

/**
 * Makes `jail` the root and the working directory, and proves it. The jail is
 * opened without following a final symlink and compared with what `lstat`
 * saw (the tree the safety checks judged); then fchdir to it, `chroot(".")`,
 * `chdir("/")`, and `/` (and `/..`) must be that directory. A chroot whose
 * cwd stays outside is the classic escape; a path swapped between check and
 * use is the other. Call `checkJail` first. Reasons: `chdir` (cannot enter,
 * jailkit 19), `moved` (the directory is not the one checked, jailkit 21),
 * `chroot` (jailkit 33).
 *
 * @example
 * ```ts
 * enterJail("/srv/jail"); // now "/" is /srv/jail
 * ```
 */
export function enterJail(jail: string): DirectoryIdentity {
  let seen: Deno.FileInfo;
  try {
    seen = Deno.lstatSync(jail);
  } catch (e) {
    throw new PrivilegeError("jail", "chdir", `cannot stat ${jail}: ${describe(e)}`);
  }
  if (!seen.isDirectory) {
    throw new PrivilegeError("jail", "chdir", `${jail} is not a directory`);
  }
  const fd = attempt("jail", "chdir", () => open(jail, O_PATH | O_DIRECTORY | O_NOFOLLOW));
  try {
    const opened = attempt("jail", "chdir", () => fstat(fd));
    const expected = { dev: opened.dev, ino: opened.ino };
    if (BigInt(seen.ino ?? -1) !== opened.ino || !sameDevice(seen.dev, opened.dev)) {
      throw new PrivilegeError("jail", "moved", `${jail} changed while it was being entered`);
    }
    attempt("jail", "chdir", () => fchdir(fd));
    attempt("jail", "chroot", () => chroot("."));
    attempt("jail", "chroot", () => chdir("/"));
    for (const path of ["/", "/.."]) {
      const here = attempt("jail", "moved", () => statDirectory(path));
      if (here.dev !== expected.dev || here.ino !== expected.ino) {
        throw new PrivilegeError("jail", "moved", `after chroot, ${path} is not ${jail}`);
      }
    }
    return expected;
  } finally {
    close(fd);
  }
}

/** Deno reports `dev` as a plain number; compare it with the makedev encoding. */
function sameDevice(denoDev: number, dev: bigint): boolean {
  return BigInt(denoDev) === dev;
}

/** Device and inode of a directory, through an O_PATH fd (no read permission needed). */
function statDirectory(path: string): DirectoryIdentity {
  const fd = open(path, O_PATH | O_DIRECTORY);
  try {
    const { dev, ino } = fstat(fd);
    return { dev, ino };
  } finally {
    close(fd);
  }
}

// ---------------------------------------------------------------------------
// 6. The drop

/** Ids to become for good. */
export interface Target {
  uid: number;
  gid: number;
  /** Supplementary groups; the primary gid is usually among them. */
  groups: readonly number[];
}

/**
 * Becomes `target` for good: setgroups (needs CAP_SETGID, so first), then
 * setresgid (before the uid, for the same reason), then setresuid, which
 * empties the capabilities of every thread (in a `--caps` install by way of
 * saved uid 0, see below), then `clearCapabilities` for the inheritable and
 * ambient sets of this thread and the check that all are empty. Then verifies: real, effective and saved ids are the
 * target's, the groups are exactly the target's, and — OpenSSH's "was able to
 * restore old uid" check — setting uid 0, gid 0, the ids held before, or group
 * 0 is refused by the kernel. Reasons: `setgroups`, `setresgid`, `setresuid`
 * (jailkit 35, 34, 36), `verify`, `regained`.
 *
 * @example
 * ```ts
 * dropTo({ uid: me.uid, gid: me.gid, groups: me.groups });
 * ```
 */
export function dropTo(target: Target): void {
  const before = attempt("drop", "verify", () => ({ uid: getresuid(), gid: getresgid() }));
  attempt("drop", "setgroups", () => setgroups(target.groups));
  attempt("drop", "setresgid", () => setresgid(target.gid, target.gid, target.gid));
  if (Object.values(before.uid).every((id) => id !== 0)) {
    // A --caps start holds no uid 0, so setresuid alone would leave every
    // thread's capabilities in place (capset reaches only this one). The
    // kernel clears permitted, effective and ambient capabilities when a
    // thread goes from any uid 0 to none: pass through saved uid 0 (allowed
    // by CAP_SETUID, grants nothing: the effective uid stays the user's) so
    // the final setresuid, which glibc applies to every thread, sheds them all.
    attempt("drop", "setresuid", () => setresuid(target.uid, target.uid, 0));
  }
  attempt("drop", "setresuid", () => setresuid(target.uid, target.uid, target.uid));
  clearCapabilities();
  attempt("drop", "verify", () => verifyIds(target));
  proveIrreversible(target, [
    ...Object.values(before.uid).map((uid) => ({ kind: "setresuid" as const, id: uid })),
    ...Object.values(before.gid).map((gid) => ({ kind: "setresgid" as const, id: gid })),
  ]);
}

function verifyIds(target: Target): void {
  const uid = getresuid(), gid = getresgid();
  const ids = (r: { real: number; effective: number; saved: number }) =>
    `${r.real}/${r.effective}/${r.saved}`;
  if (uid.real !== target.uid || uid.effective !== target.uid || uid.saved !== target.uid) {
    throw new PrivilegeError("drop", "verify", `user ids are ${ids(uid)}, not ${target.uid}`);
  }
  if (gid.real !== target.gid || gid.effective !== target.gid || gid.saved !== target.gid) {
    throw new PrivilegeError("drop", "verify", `group ids are ${ids(gid)}, not ${target.gid}`);
  }
  const want = [...new Set(target.groups)].sort((a, b) => a - b);
  const have = [...new Set(getgroups())].sort((a, b) => a - b);
  if (want.join(",") !== have.join(",")) {
    throw new PrivilegeError("drop", "verify", `groups are [${have}], not [${want}]`);
  }
}

/**
 * Asks the kernel to undo the drop and insists on EPERM. A probe that succeeds
 * leaves this thread with ids it must not have: the process ends at once.
 */
function proveIrreversible(
  target: Target,
  held: { kind: "setresuid" | "setresgid"; id: number }[],
): void {
  const probes = [{ kind: "setresuid" as const, id: 0 }, { kind: "setresgid" as const, id: 0 }]
    .concat(held)
    .filter((p) => p.id !== (p.kind === "setresuid" ? target.uid : target.gid));
  for (const probe of probes) {
    const err = probeSetIds(probe.kind, probe.id);
    if (err === 0) regained(`${probe.kind}(${probe.id})`);
    if (err !== EPERM) {
      throw new PrivilegeError(
        "drop",
        "verify",
        `${probe.kind}(${probe.id}) failed with ${errnoName(err)}, expected EPERM`,
      );
    }
  }
  const err = probeSetgroups([0]);
  if (err === 0) regained("setgroups([0])");
  if (err !== EPERM) {
    throw new PrivilegeError("drop", "verify", `setgroups([0]) failed with ${errnoName(err)}`);
  }
}

/** A regained privilege: no code of ours may run any further. */
function regained(call: string): never {
  try {
    write(2, new TextEncoder().encode(`fatal: ${call} succeeded after dropping privileges\n`));
  } finally {
    exitNow(70);
  }
}

/**
 * Empties the ambient, inheritable, permitted and effective capability sets of
 * the calling thread and verifies with capget and PR_CAP_AMBIENT_IS_SET that
 * all four are empty. The ambient set matters most: the `--caps` trampoline
 * raised cap_sys_chroot, cap_setuid and cap_setgid into it, and an ambient
 * capability survives execve into the jailed shell. Reason: `capabilities`
 * (jailkit 101–105).
 *
 * @example
 * ```ts
 * clearCapabilities();
 * ```
 */
export function clearCapabilities(): void {
  attempt("capabilities", "capabilities", () => {
    clearAmbientCapabilities();
    capsetZero();
  });
  const caps = attempt("capabilities", "capabilities", capabilities);
  const ambient = attempt("capabilities", "capabilities", ambientCapabilities);
  if (caps.effective | caps.permitted | caps.inheritable | ambient) {
    throw new PrivilegeError(
      "capabilities",
      "capabilities",
      `capabilities remain: effective 0x${caps.effective.toString(16)}, permitted ` +
        `0x${caps.permitted.toString(16)}, inheritable 0x${caps.inheritable.toString(16)}, ` +
        `ambient 0x${ambient.toString(16)}`,
    );
  }
}

// ---------------------------------------------------------------------------
// 7. No new privileges

/**
 * Sets `no_new_privs` and verifies it: execve can no longer grant privileges,
 * so a setuid-root file or a file with capabilities inside the jail runs with
 * the user's own rights (peers-and-threats §2.3, §5.4). Inherited by every
 * child; cannot be undone. Reason: `no_new_privs`.
 *
 * @example
 * ```ts
 * setNoNewPrivs();
 * ```
 */
export function setNoNewPrivs(): void {
  attempt("no_new_privs", "no_new_privs", prctlNoNewPrivs);
  if (!attempt("no_new_privs", "no_new_privs", getNoNewPrivs)) {
    throw new PrivilegeError("no_new_privs", "no_new_privs", "no_new_privs did not stick");
  }
}

// ---------------------------------------------------------------------------
// 8. Just before execve

/**
 * Puts the process state the exec'd program inherits into a known shape:
 * - every signal disposition back to default (Deno ignores SIGPIPE, and an
 *   ignored signal survives execve: `yes | head` would spin in the jail), and
 *   an empty signal mask on this thread, the one that execs;
 * - every fd above 2 close-on-exec (the trampoline closed the caller's; this
 *   covers whatever was opened since, the syslog socket included), so nothing
 *   that points outside the jail crosses into it (§2.2). Close-on-exec rather
 *   than closed, so that the runtime and the log still work if execve fails;
 * - the caller's core-file limit back (see `hardenProcess`).
 *
 * Call it immediately before `execOrDie`: it removes the runtime's own signal
 * handlers. Reason: `exec`.
 *
 * @example
 * ```ts
 * prepareExec(hardening);
 * execOrDie("/bin/sh", ["-sh"], env);
 * ```
 */
export function prepareExec(hardening?: Hardening): void {
  attempt("exec", "exec", () => {
    resetAllSignals();
    setSignalMask([]);
    closeRange(3, 0xffff_ffff, CLOSE_RANGE_CLOEXEC);
    if (hardening) {
      setrlimit(RLIMIT_CORE, hardening.coreLimit.soft, hardening.coreLimit.hard);
    }
  });
}

// ---------------------------------------------------------------------------
// 9. Leaving

/** What `execOrDie` does when execve fails. */
export interface ExecFailure {
  /** Exit code (default 127, the shell's "cannot execute"). */
  exitCode?: number;
  /** Called with the error before exiting, e.g. to log; its own errors are ignored. */
  onFailure?: (error: LibcError) => void;
}

/**
 * Replaces the process with `path` (no PATH search), with exactly `argv` and
 * `env`. execve through FFI keeps the pid and leaves no Deno process behind.
 * If execve fails: `onFailure`, the message on stderr with a raw write (no
 * runtime I/O), then `_exit` — no unload handlers, no event loop.
 *
 * @example
 * ```ts
 * execOrDie("/bin/bash", ["-bash"], ["HOME=/home/alice"], {
 *   exitCode: 111,
 *   onFailure: (e) => log.log(LOG_ERR, `cannot execute /bin/bash: ${e.code}`),
 * });
 * ```
 */
export function execOrDie(
  path: string,
  argv: readonly (string | Uint8Array)[],
  env: readonly string[],
  failure: ExecFailure = {},
): never {
  try {
    execve(path, argv, env);
  } catch (e) {
    const error = e instanceof LibcError ? e : null;
    try {
      if (error) failure.onFailure?.(error);
    } catch {
      // the failure handler must not keep us from exiting
    }
    try {
      write(2, new TextEncoder().encode(`cannot execute ${path}: ${describe(e)}\n`));
    } catch {
      // stderr may be gone; the exit code still tells
    }
  }
  return exitNow(failure.exitCode ?? 127);
}
