/**
 * Typed bindings to the C library through `Deno.dlopen`: the few system calls
 * the privileged tools need that Deno does not offer (chroot, set*id, groups,
 * capabilities, prctl, mknod, execve, signal state, openat2, AF_UNIX sockets).
 *
 * Layout: library path and symbol table; lazy opening; errno handling and
 * `LibcError`; C string helpers; then the wrappers, grouped by concern.
 *
 * Permissions. Importing this module needs nothing: the library is opened on
 * the first call of a wrapper, so a tool that only uses `errnoName` or the
 * constants runs without `--allow-ffi`. Calling a wrapper needs **unscoped**
 * `--allow-ffi`: `Deno.UnsafePointer.of` and `Deno.UnsafePointerView` (C
 * strings, argv arrays, struct passwd, errno) refuse a path-scoped grant
 * (notes §1.4). Deno documents `--allow-ffi` as equivalent to `--allow-all`.
 *
 * Which libc. The library is opened by absolute path, never by the bare name
 * `libc.so.6` (Deno resolves a relative name against the current directory):
 * `/lib/<arch>-linux-gnu/libc.so.6`, then `/usr/lib/<arch>-linux-gnu/libc.so.6`
 * (Debian/Ubuntu multiarch, `<arch>` from `Deno.build.arch`), then
 * `/lib64/libc.so.6` (Fedora/SUSE layout). Each is the system's own glibc, the
 * one the Deno runtime was linked against; glibc's dlopen recognises the
 * already-loaded file by device and inode and hands back the runtime's own
 * instance, so there is one errno and one thread list for the set*id
 * broadcast. Only glibc on x86_64 and aarch64 is supported (struct layouts and
 * `O_*` values below are for those two).
 *
 * Threads. Deno runs several threads. glibc's `setresuid`, `setresgid` and
 * `setgroups` change the credentials of every thread (SIGSETXID broadcast), so
 * they are called through glibc, never as raw `syscall()`s. chroot, chdir and
 * umask act on the fs struct all threads share. Capabilities (`capset`, the
 * ambient set), `no_new_privs`, the signal mask and errno are per thread: the
 * wrappers act on the calling (main JavaScript) thread, which is the thread
 * that calls `execve` and that `Deno.Command` forks from.
 *
 * @module
 */

import { JkError } from "./cli.ts";

// ---------------------------------------------------------------------------
// Library path and symbol table

/** Multiarch triples of the architectures whose struct layouts this module knows. */
const TRIPLES: Partial<Record<typeof Deno.build.arch, string>> = {
  x86_64: "x86_64-linux-gnu",
  aarch64: "aarch64-linux-gnu",
};

/**
 * Absolute paths tried, in order, to open the C library on this architecture.
 *
 * @example
 * ```ts
 * libcCandidates("x86_64")[0]; // "/lib/x86_64-linux-gnu/libc.so.6"
 * ```
 */
export function libcCandidates(arch: typeof Deno.build.arch = Deno.build.arch): string[] {
  const triple = TRIPLES[arch];
  if (!triple) return [];
  return [`/lib/${triple}/libc.so.6`, `/usr/lib/${triple}/libc.so.6`, "/lib64/libc.so.6"];
}

const SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  // identity
  getuid: { parameters: [], result: "u32" },
  geteuid: { parameters: [], result: "u32" },
  getgid: { parameters: [], result: "u32" },
  getegid: { parameters: [], result: "u32" },
  getresuid: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  getresgid: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  getgroups: { parameters: ["i32", "buffer"], result: "i32" },
  setgroups: { parameters: ["usize", "buffer"], result: "i32" },
  setresuid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  setresgid: { parameters: ["u32", "u32", "u32"], result: "i32" },
  // user database (reentrant variants: they return the error number)
  getpwnam_r: { parameters: ["buffer", "buffer", "buffer", "usize", "buffer"], result: "i32" },
  getpwuid_r: { parameters: ["u32", "buffer", "buffer", "usize", "buffer"], result: "i32" },
  getgrnam_r: { parameters: ["buffer", "buffer", "buffer", "usize", "buffer"], result: "i32" },
  getgrgid_r: { parameters: ["u32", "buffer", "buffer", "usize", "buffer"], result: "i32" },
  getgrouplist: { parameters: ["buffer", "u32", "buffer", "buffer"], result: "i32" },
  // process state
  chroot: { parameters: ["buffer"], result: "i32" },
  chdir: { parameters: ["buffer"], result: "i32" },
  fchdir: { parameters: ["i32"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  setsid: { parameters: [], result: "i32" },
  // prctl and syscall are variadic; passing every argument as a 64-bit integer
  // is the variadic convention for integers on x86_64 and aarch64 Linux.
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  capget: { parameters: ["buffer", "buffer"], result: "i32" },
  capset: { parameters: ["buffer", "buffer"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  signal: { parameters: ["i32", "usize"], result: "usize" },
  sigprocmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // files and descriptors
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "buffer", "buffer", "u64"], result: "i64" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  closefrom: { parameters: ["i32"], result: "void" },
  close_range: { parameters: ["u32", "u32", "i32"], result: "i32" },
  // sockets
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  // leaving
  execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  _exit: { parameters: ["i32"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// ---------------------------------------------------------------------------
// Lazy opening

interface Opened {
  path: string;
  symbols: Symbols;
  /** View of the main thread's errno, created once so that reading it allocates nothing. */
  errno: Deno.UnsafePointerView;
}

let opened: Opened | null = null;

/** Opens the C library on first use; throws a `JkError` when none of the candidates opens. */
function libc(): Symbols {
  return (opened ??= openLibc()).symbols;
}

function openLibc(): Opened {
  const candidates = libcCandidates();
  if (candidates.length === 0 || Deno.build.os !== "linux") {
    throw new JkError(`libc bindings support glibc on x86_64 and aarch64 Linux only`);
  }
  let lastError: unknown = null;
  for (const path of candidates) {
    try {
      const lib = Deno.dlopen(path, SYMBOLS);
      const location = lib.symbols.__errno_location();
      if (location === null) throw new Error("__errno_location returned NULL");
      return { path, symbols: lib.symbols, errno: new Deno.UnsafePointerView(location) };
    } catch (e) {
      // A missing --allow-ffi is the same for every candidate: report it as is.
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
      lastError = e;
    }
  }
  const why = lastError instanceof Error ? lastError.message : String(lastError);
  throw new JkError(`cannot open the C library (tried ${candidates.join(", ")}): ${why}`);
}

/**
 * Absolute path of the C library in use, opening it if needed.
 *
 * @example
 * ```ts
 * libcPath(); // "/lib/x86_64-linux-gnu/libc.so.6"
 * ```
 */
export function libcPath(): string {
  libc();
  return opened!.path;
}

// ---------------------------------------------------------------------------
// errno

/** Linux errno names (asm-generic numbering, shared by x86_64 and aarch64). */
const ERRNO_NAMES: ReadonlyMap<number, string> = new Map(
  `
  1 EPERM 2 ENOENT 3 ESRCH 4 EINTR 5 EIO 6 ENXIO 7 E2BIG 8 ENOEXEC 9 EBADF 10 ECHILD
  11 EAGAIN 12 ENOMEM 13 EACCES 14 EFAULT 15 ENOTBLK 16 EBUSY 17 EEXIST 18 EXDEV 19 ENODEV
  20 ENOTDIR 21 EISDIR 22 EINVAL 23 ENFILE 24 EMFILE 25 ENOTTY 26 ETXTBSY 27 EFBIG 28 ENOSPC
  29 ESPIPE 30 EROFS 31 EMLINK 32 EPIPE 33 EDOM 34 ERANGE 35 EDEADLK 36 ENAMETOOLONG
  37 ENOLCK 38 ENOSYS 39 ENOTEMPTY 40 ELOOP 61 ENODATA 75 EOVERFLOW 84 EILSEQ 88 ENOTSOCK
  89 EDESTADDRREQ 90 EMSGSIZE 91 EPROTOTYPE 93 EPROTONOSUPPORT 95 EOPNOTSUPP 97 EAFNOSUPPORT
  98 EADDRINUSE 99 EADDRNOTAVAIL 100 ENETDOWN 101 ENETUNREACH 104 ECONNRESET 105 ENOBUFS
  106 EISCONN 107 ENOTCONN 110 ETIMEDOUT 111 ECONNREFUSED 116 ESTALE 122 EDQUOT
  125 ECANCELED
  `.trim().split(/\s+/).reduce<[number, string][]>(
    (pairs, word, i, words) => i % 2 ? pairs : [...pairs, [Number(word), words[i + 1]]],
    [],
  ),
);

/** errno values the wrappers test for. */
export const EPERM = 1, ENOENT = 2, EINTR = 4, EBADF = 9, EAGAIN = 11, EINVAL = 22;
/** errno values the wrappers test for. */
export const ERANGE = 34, ENAMETOOLONG = 36, ENOTSOCK = 88, ENOTCONN = 107, ECONNREFUSED = 111;

/**
 * Symbolic name of an errno value; `errno <n>` for values not in the table.
 * Needs no permission.
 *
 * @example
 * ```ts
 * errnoName(1); // "EPERM"
 * errnoName(2); // "ENOENT"
 * ```
 */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * A failed C library call: the call with its arguments, the errno name and
 * glibc's description, e.g. `chroot("/srv/j"): EPERM (Operation not permitted)`.
 */
export class LibcError extends JkError {
  /** Symbolic errno name, e.g. `EPERM`. */
  readonly code: string;

  /**
   * @param call the call as written in the message, e.g. `chroot("/srv/j")`
   * @param errno the errno value read right after the call
   * @param exitCode the exit code a tool reports it with (default 1)
   * @example
   * ```ts
   * throw new LibcError('mknod("/srv/j/dev/null")', EPERM);
   * ```
   */
  constructor(readonly call: string, readonly errno: number, exitCode = 1) {
    super(`${call}: ${errnoName(errno)} (${strerror(errno)})`, exitCode);
    this.name = "LibcError";
    this.code = errnoName(errno);
  }
}

/**
 * glibc's description of an errno value, e.g. "Operation not permitted".
 * Falls back to `Unknown error <n>` when the library is not open (no FFI).
 *
 * @example
 * ```ts
 * strerror(2); // "No such file or directory"
 * ```
 */
export function strerror(errno: number): string {
  if (opened === null) return `Unknown error ${errno}`;
  const text = opened.symbols.strerror(errno);
  return text === null ? `Unknown error ${errno}` : Deno.UnsafePointerView.getCString(text);
}

/**
 * The calling thread's errno. Read it as the very first thing after a failing
 * call: anything in between (an allocation that triggers a collection, another
 * FFI call) may overwrite it. The cached view makes this read allocation-free.
 */
function errno(): number {
  return opened!.errno.getInt32();
}

/**
 * Builds the error for a failed call. Call as `fail(errno(), "name", ...args)`
 * so that errno is evaluated before the argument list is allocated.
 */
function fail(err: number, name: string, ...args: unknown[]): LibcError {
  const shown = args.map((a) => typeof a === "string" ? q(a) : String(a));
  return new LibcError(`${name}(${shown.join(", ")})`, err);
}

/** An argument shown in an error message as is, not quoted like a string. */
function raw(text: string): { toString(): string } {
  return { toString: () => text };
}

/** A mode or flag word as octal, for error messages. */
function octal(value: number): { toString(): string } {
  return raw(`0o${value.toString(8)}`);
}

// ---------------------------------------------------------------------------
// C strings and arrays

const encoder = new TextEncoder();

/**
 * A NUL-terminated UTF-8 copy of `text`. Refuses an embedded NUL, which C
 * would silently treat as the end (`"/srv/jail\0/.."` would become `/srv/jail`).
 */
function cstr(text: string, what: string): Uint8Array<ArrayBuffer> {
  if (text.includes("\0")) {
    throw new JkError(`${what}: ${JSON.stringify(text)} contains a NUL byte`);
  }
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A NULL-terminated `char *[]` and the strings it points to (keep both alive). */
function cstrArray(items: string[], what: string): { array: BigUint64Array; strings: unknown[] } {
  const strings = items.map((s) => cstr(s, what));
  const array = new BigUint64Array(items.length + 1);
  strings.forEach((s, i) => array[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
  return { array, strings };
}

/**
 * Module-level reference for memory that C code points into during a call
 * (argv, envp): a local variable could be considered dead by the optimiser and
 * its backing stores swept concurrently while `execve` still reads them.
 */
const pinned: { current: unknown } = { current: null };

/** Reads a C string at an absolute address; `null` for NULL. */
function cStringAt(address: bigint): string | null {
  if (address === 0n) return null;
  return Deno.UnsafePointerView.getCString(Deno.UnsafePointer.create(address)!);
}

// ---------------------------------------------------------------------------
// Identity: ids and groups

/** Real, effective and saved ids, as `getresuid`/`getresgid` return them. */
export interface ResIds {
  real: number;
  effective: number;
  saved: number;
}

/** Real user id. @example `getuid(); // 0` */
export function getuid(): number {
  return libc().getuid();
}

/** Effective user id. @example `geteuid(); // 0` */
export function geteuid(): number {
  return libc().geteuid();
}

/** Real group id. @example `getgid(); // 0` */
export function getgid(): number {
  return libc().getgid();
}

/** Effective group id. @example `getegid(); // 0` */
export function getegid(): number {
  return libc().getegid();
}

function getResIds(name: "getresuid" | "getresgid"): ResIds {
  const r = new Uint32Array(1), e = new Uint32Array(1), s = new Uint32Array(1);
  if (libc()[name](r, e, s) !== 0) throw fail(errno(), name);
  return { real: r[0], effective: e[0], saved: s[0] };
}

/**
 * Real, effective and saved user ids.
 *
 * @example
 * ```ts
 * const { real, effective, saved } = getresuid();
 * ```
 */
export function getresuid(): ResIds {
  return getResIds("getresuid");
}

/**
 * Real, effective and saved group ids.
 *
 * @example
 * ```ts
 * getresgid().effective; // 0
 * ```
 */
export function getresgid(): ResIds {
  return getResIds("getresgid");
}

/**
 * Supplementary group ids of the calling thread.
 *
 * @example
 * ```ts
 * getgroups(); // [0]
 * ```
 */
export function getgroups(): number[] {
  const s = libc();
  for (let attempt = 0; attempt < 4; attempt++) {
    const count = s.getgroups(0, null);
    if (count < 0) throw fail(errno(), "getgroups", 0);
    const list = new Uint32Array(count);
    const got = s.getgroups(count, count === 0 ? null : list);
    if (got >= 0) return [...list.subarray(0, got)];
    const err = errno();
    if (err !== EINVAL) throw fail(err, "getgroups", count); // EINVAL: the list grew meanwhile
  }
  throw new LibcError("getgroups", EINVAL);
}

/**
 * Sets the supplementary groups of every thread (needs CAP_SETGID). An empty
 * list clears them. Call before `setresgid`/`setresuid`.
 *
 * @example
 * ```ts
 * setgroups([1000, 27]);
 * ```
 */
export function setgroups(gids: readonly number[]): void {
  const list = Uint32Array.from(gids);
  if (libc().setgroups(BigInt(list.length), list.length === 0 ? null : list) !== 0) {
    throw fail(errno(), "setgroups", raw(`[${gids.join(", ")}]`));
  }
}

/**
 * Sets real, effective and saved group ids of every thread.
 *
 * @example
 * ```ts
 * setresgid(1000, 1000, 1000);
 * ```
 */
export function setresgid(real: number, effective: number, saved: number): void {
  if (libc().setresgid(real, effective, saved) !== 0) {
    throw fail(errno(), "setresgid", real, effective, saved);
  }
}

/**
 * Sets real, effective and saved user ids of every thread. Going from uid 0 to
 * non-zero ids clears the permitted and effective capabilities.
 *
 * @example
 * ```ts
 * setresuid(1000, 1000, 1000);
 * ```
 */
export function setresuid(real: number, effective: number, saved: number): void {
  if (libc().setresuid(real, effective, saved) !== 0) {
    throw fail(errno(), "setresuid", real, effective, saved);
  }
}

// ---------------------------------------------------------------------------
// User database (NSS). Resolve everything before chroot: after it, glibc may
// load libnss_*.so from inside the jail.

/** An entry of the user database. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  dir: string;
  shell: string;
}

/** An entry of the group database. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** Largest scratch buffer handed to the *_r lookups (a group may list many members). */
const MAX_LOOKUP_BUFFER = 16 * 1024 * 1024;

/**
 * Runs a reentrant lookup, growing its buffer on ERANGE. Returns the filled
 * struct, or null when the entry does not exist. Any other error throws: a
 * failing NSS backend must not read as "no such user".
 */
function lookup(
  structSize: number,
  call: (out: Uint8Array, buf: Uint8Array, result: BigUint64Array) => number,
  describe: () => string,
): { struct: DataView; buf: Uint8Array } | null {
  for (let size = 4096;; size *= 2) {
    const out = new Uint8Array(structSize);
    const buf = new Uint8Array(size);
    const result = new BigUint64Array(1);
    const err = call(out, buf, result);
    if (err === ERANGE && size < MAX_LOOKUP_BUFFER) continue;
    if (err !== 0) throw new LibcError(describe(), err);
    return result[0] === 0n ? null : { struct: new DataView(out.buffer), buf };
  }
}

// struct passwd (LP64): name@0 passwd@8 uid@16 gid@20 gecos@24 dir@32 shell@40, 48 bytes
function parsePasswd(found: { struct: DataView } | null): PasswdEntry | null {
  if (found === null) return null;
  const v = found.struct;
  const str = (offset: number) => cStringAt(v.getBigUint64(offset, true)) ?? "";
  return {
    name: str(0),
    uid: v.getUint32(16, true),
    gid: v.getUint32(20, true),
    gecos: str(24),
    dir: str(32),
    shell: str(40),
  };
}

// struct group (LP64): name@0 passwd@8 gid@16 mem@24 (char **, NULL-terminated), 32 bytes
function parseGroup(found: { struct: DataView; buf: Uint8Array } | null): GroupEntry | null {
  if (found === null) return null;
  const v = found.struct;
  const members: string[] = [];
  const mem = v.getBigUint64(24, true);
  if (mem !== 0n) {
    const list = new Deno.UnsafePointerView(Deno.UnsafePointer.create(mem)!);
    // The array lives inside our buffer, so it has fewer than buf.length / 8 entries.
    for (let i = 0; i < found.buf.length / 8; i++) {
      const member = cStringAt(list.getBigUint64(i * 8));
      if (member === null) break;
      members.push(member);
    }
  }
  return { name: cStringAt(v.getBigUint64(0, true)) ?? "", gid: v.getUint32(16, true), members };
}

/**
 * Looks a user up by name; `null` when there is none.
 *
 * @example
 * ```ts
 * getpwnam("root")?.dir; // "/root"
 * ```
 */
export function getpwnam(name: string): PasswdEntry | null {
  const c = cstr(name, "getpwnam");
  const s = libc();
  return parsePasswd(
    lookup(
      48,
      (o, b, r) => s.getpwnam_r(c, o, b, BigInt(b.length), r),
      () => `getpwnam(${q(name)})`,
    ),
  );
}

/**
 * Looks a user up by uid; `null` when there is none.
 *
 * @example
 * ```ts
 * getpwuid(0)?.name; // "root"
 * ```
 */
export function getpwuid(uid: number): PasswdEntry | null {
  const s = libc();
  return parsePasswd(
    lookup(48, (o, b, r) => s.getpwuid_r(uid, o, b, BigInt(b.length), r), () => `getpwuid(${uid})`),
  );
}

/**
 * Looks a group up by name; `null` when there is none.
 *
 * @example
 * ```ts
 * getgrnam("root")?.gid; // 0
 * ```
 */
export function getgrnam(name: string): GroupEntry | null {
  const c = cstr(name, "getgrnam");
  const s = libc();
  return parseGroup(
    lookup(
      32,
      (o, b, r) => s.getgrnam_r(c, o, b, BigInt(b.length), r),
      () => `getgrnam(${q(name)})`,
    ),
  );
}

/**
 * Looks a group up by gid; `null` when there is none.
 *
 * @example
 * ```ts
 * getgrgid(0)?.name; // "root"
 * ```
 */
export function getgrgid(gid: number): GroupEntry | null {
  const s = libc();
  return parseGroup(
    lookup(32, (o, b, r) => s.getgrgid_r(gid, o, b, BigInt(b.length), r), () => `getgrgid(${gid})`),
  );
}

/**
 * Every group of `user`: `gid` (normally the passwd primary group) first, then
 * each group that lists the user as a member. Retries with the size glibc
 * reports when the first buffer is too small.
 *
 * @example
 * ```ts
 * const pw = getpwnam("alice")!;
 * setgroups(getgrouplist(pw.name, pw.gid));
 * ```
 */
export function getgrouplist(user: string, gid: number): number[] {
  const c = cstr(user, "getgrouplist");
  const s = libc();
  let capacity = 64;
  for (let attempt = 0; attempt < 8; attempt++) {
    const list = new Uint32Array(capacity);
    const count = new Int32Array([capacity]);
    if (s.getgrouplist(c, gid, list, count) >= 0) return [...list.subarray(0, count[0])];
    // -1: glibc stored the number it needs in *ngroups; the membership may grow meanwhile.
    capacity = Math.max(count[0], capacity * 2);
    if (capacity > 65536) break;
  }
  throw new JkError(`getgrouplist(${q(user)}, ${gid}): too many groups`);
}

// ---------------------------------------------------------------------------
// Process state: root, cwd, umask, session, prctl, capabilities, limits

/**
 * Changes the root directory of the process (all threads). Follow with
 * `chdir("/")`: chroot does not move the working directory.
 *
 * @example
 * ```ts
 * chroot("/srv/jail");
 * chdir("/");
 * ```
 */
export function chroot(path: string): void {
  if (libc().chroot(cstr(path, "chroot")) !== 0) throw fail(errno(), "chroot", path);
}

/**
 * Changes the working directory (all threads).
 *
 * @example
 * ```ts
 * chdir("/home/alice");
 * ```
 */
export function chdir(path: string): void {
  if (libc().chdir(cstr(path, "chdir")) !== 0) throw fail(errno(), "chdir", path);
}

/**
 * Changes the working directory to an open directory fd.
 *
 * @example
 * ```ts
 * const jail = open("/srv/jail", O_PATH | O_DIRECTORY | O_NOFOLLOW);
 * fchdir(jail);
 * chroot(".");
 * ```
 */
export function fchdir(fd: number): void {
  if (libc().fchdir(fd) !== 0) throw fail(errno(), "fchdir", fd);
}

/**
 * Sets the file mode creation mask; returns the previous one. Needs no
 * `--allow-sys=umask`, unlike `Deno.umask`.
 *
 * @example
 * ```ts
 * const old = umask(0o077);
 * ```
 */
export function umask(mask: number): number {
  return libc().umask(mask & 0o777);
}

/**
 * Starts a new session and process group; returns the session id. Fails with
 * EPERM when the process already leads a process group.
 *
 * @example
 * ```ts
 * setsid();
 * ```
 */
export function setsid(): number {
  const sid = libc().setsid();
  if (sid < 0) throw fail(errno(), "setsid");
  return sid;
}

const PR_GET_DUMPABLE = 3, PR_SET_DUMPABLE = 4;
const PR_SET_NO_NEW_PRIVS = 38, PR_GET_NO_NEW_PRIVS = 39;
const PR_CAP_AMBIENT = 47, PR_CAP_AMBIENT_CLEAR_ALL = 4;

function prctl(name: string, option: number, arg2 = 0n, arg3 = 0n): number {
  const r = libc().prctl(option, arg2, arg3, 0n, 0n);
  if (r < 0) throw fail(errno(), name);
  return r;
}

/**
 * Sets `no_new_privs` on the calling thread, which every later execve and
 * child inherits: setuid bits and file capabilities stop working. Cannot be
 * undone.
 *
 * @example
 * ```ts
 * setNoNewPrivs();
 * getNoNewPrivs(); // true
 * ```
 */
export function setNoNewPrivs(): void {
  prctl("prctl(PR_SET_NO_NEW_PRIVS, 1)", PR_SET_NO_NEW_PRIVS, 1n);
}

/** Whether `no_new_privs` is set on the calling thread. @example `getNoNewPrivs(); // false` */
export function getNoNewPrivs(): boolean {
  return prctl("prctl(PR_GET_NO_NEW_PRIVS)", PR_GET_NO_NEW_PRIVS) === 1;
}

/**
 * Sets whether the process may dump core and be ptraced by its owner. Keep it
 * off while any privilege or privileged fd remains (CVE-2016-8659).
 *
 * @example
 * ```ts
 * setDumpable(false);
 * ```
 */
export function setDumpable(dumpable: boolean): void {
  const value = dumpable ? 1n : 0n;
  prctl(`prctl(PR_SET_DUMPABLE, ${value})`, PR_SET_DUMPABLE, value);
}

/** Whether the process is dumpable. @example `getDumpable(); // true` */
export function getDumpable(): boolean {
  return prctl("prctl(PR_GET_DUMPABLE)", PR_GET_DUMPABLE) === 1;
}

/**
 * Empties the ambient capability set of the calling thread.
 *
 * @example
 * ```ts
 * clearAmbientCapabilities();
 * ```
 */
export function clearAmbientCapabilities(): void {
  prctl(
    "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)",
    PR_CAP_AMBIENT,
    BigInt(PR_CAP_AMBIENT_CLEAR_ALL),
  );
}

/** Capability sets as 64-bit masks (bit n = capability n). */
export interface CapabilitySets {
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
}

/** `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set. */
const CAPABILITY_VERSION_3 = 0x20080522;

/** struct __user_cap_header_struct { u32 version; i32 pid }, pid 0 = calling thread. */
function capHeader(): Uint32Array<ArrayBuffer> {
  return new Uint32Array([CAPABILITY_VERSION_3, 0]);
}

/**
 * The calling thread's effective, permitted and inheritable capabilities.
 *
 * @example
 * ```ts
 * capabilities().effective === 0n; // true once privileges are dropped
 * ```
 */
export function capabilities(): CapabilitySets {
  // data[2] of { u32 effective, permitted, inheritable }: word 0 = caps 0-31, word 1 = 32-63
  const data = new Uint32Array(6);
  if (libc().capget(capHeader(), data) !== 0) throw fail(errno(), "capget");
  const join = (i: number) => BigInt(data[i]) | (BigInt(data[i + 3]) << 32n);
  return { effective: join(0), permitted: join(1), inheritable: join(2) };
}

/**
 * Empties the effective, permitted and inheritable capability sets of the
 * calling thread. capset is per thread and glibc does not broadcast it: the
 * program this thread execs starts without capabilities, but the runtime's
 * other threads keep theirs until execve (or until a setresuid away from uid
 * 0, which glibc does broadcast, clears them).
 *
 * @example
 * ```ts
 * clearCapabilities();
 * ```
 */
export function clearCapabilities(): void {
  if (libc().capset(capHeader(), new Uint32Array(6)) !== 0) throw fail(errno(), "capset", 0);
}

/** `RLIMIT_*` resources (asm-generic values, shared by x86_64 and aarch64). */
export const RLIMIT_CORE = 4, RLIMIT_NPROC = 6, RLIMIT_NOFILE = 7;
/** The "no limit" value of an rlimit. */
export const RLIM_INFINITY = 0xffff_ffff_ffff_ffffn;

/** A soft and a hard resource limit. */
export interface Rlimit {
  soft: bigint;
  hard: bigint;
}

/**
 * Reads a resource limit.
 *
 * @example
 * ```ts
 * getrlimit(RLIMIT_CORE).soft; // 0n after setrlimit(RLIMIT_CORE, 0n, 0n)
 * ```
 */
export function getrlimit(resource: number): Rlimit {
  const limits = new BigUint64Array(2);
  if (libc().getrlimit(resource, limits) !== 0) throw fail(errno(), "getrlimit", resource);
  return { soft: limits[0], hard: limits[1] };
}

/**
 * Sets a resource limit of the process, e.g. no core dumps while privileged.
 *
 * @example
 * ```ts
 * setrlimit(RLIMIT_CORE, 0n, 0n);
 * ```
 */
export function setrlimit(resource: number, soft: bigint, hard: bigint): void {
  if (libc().setrlimit(resource, new BigUint64Array([soft, hard])) !== 0) {
    throw fail(errno(), "setrlimit", resource, soft, hard);
  }
}

// ---------------------------------------------------------------------------
// Signals

/** Signal numbers (x86_64 and aarch64 Linux). */
export const SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGUSR1 = 10, SIGUSR2 = 12;
/** Signal numbers (x86_64 and aarch64 Linux). */
export const SIGPIPE = 13, SIGTERM = 15, SIGCHLD = 17, SIGSTOP = 19;
/** Dispositions for `signal`. */
export const SIG_DFL = 0n, SIG_IGN = 1n;
const SIG_ERR = 0xffff_ffff_ffff_ffffn;
/** Highest signal number (kernel _NSIG - 1). */
const LAST_SIGNAL = 64;
/** glibc's internal SIGCANCEL and SIGSETXID: its signal() refuses them (EINVAL). */
const GLIBC_INTERNAL_SIGNALS = new Set([32, 33]);

/**
 * Sets the disposition of a signal to `SIG_DFL` or `SIG_IGN`; returns the
 * previous handler value.
 *
 * @example
 * ```ts
 * signal(SIGPIPE, SIG_DFL); // undo the SIG_IGN Deno sets, which execve would pass on
 * ```
 */
export function signal(signo: number, handler: bigint): bigint {
  const previous = BigInt(libc().signal(signo, handler));
  if (previous === SIG_ERR) throw fail(errno(), "signal", signo, handler);
  return previous;
}

/**
 * Sets every signal but SIGKILL, SIGSTOP and glibc's two internal ones back to
 * its default disposition. Call it right before execve only: it also removes
 * the runtime's own handlers (its stack-overflow guard, Deno signal listeners,
 * the child-reaping SIGCHLD handler).
 *
 * @example
 * ```ts
 * resetAllSignals();
 * setSignalMask([]);
 * execve("/bin/sh", ["-sh"], ["PATH=/bin"]);
 * ```
 */
export function resetAllSignals(): void {
  for (let signo = 1; signo <= LAST_SIGNAL; signo++) {
    if (signo === SIGKILL || signo === SIGSTOP || GLIBC_INTERNAL_SIGNALS.has(signo)) continue;
    signal(signo, SIG_DFL);
  }
}

const SIG_SETMASK = 2;

/**
 * Replaces the calling thread's signal mask with exactly `blocked` (empty:
 * nothing blocked). The mask of the thread calling execve is inherited.
 *
 * @example
 * ```ts
 * setSignalMask([]);
 * ```
 */
export function setSignalMask(blocked: readonly number[]): void {
  const set = new BigUint64Array(16); // glibc sigset_t: 1024 bits
  for (const signo of blocked) set[0] |= 1n << BigInt(signo - 1);
  if (libc().sigprocmask(SIG_SETMASK, set, null) !== 0) {
    throw fail(errno(), "sigprocmask", raw("SIG_SETMASK"), raw(`[${blocked.join(", ")}]`));
  }
}

// ---------------------------------------------------------------------------
// Files and descriptors

/** File type bits of `mode`. */
export const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFLNK = 0o120000;
/** File type bits of `mode`. */
export const S_IFCHR = 0o020000, S_IFBLK = 0o060000, S_IFIFO = 0o010000, S_IFSOCK = 0o140000;

/** `AT_FDCWD`: resolve relative to the working directory. */
export const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;

const X86_64 = Deno.build.arch === "x86_64";
/** Open flags (x86_64 and aarch64 Linux differ in O_DIRECTORY and O_NOFOLLOW). */
export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200;
/** Open flags (x86_64 and aarch64 Linux differ in O_DIRECTORY and O_NOFOLLOW). */
export const O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_APPEND = 0o2000, O_NONBLOCK = 0o4000;
/** Open flags (x86_64 and aarch64 Linux differ in O_DIRECTORY and O_NOFOLLOW). */
export const O_DIRECTORY = X86_64 ? 0o200000 : 0o40000, O_NOFOLLOW = X86_64 ? 0o400000 : 0o100000;
/** Open flags: every wrapper adds O_CLOEXEC, so no fd of ours reaches an exec'd program. */
export const O_CLOEXEC = 0o2000000, O_PATH = 0o10000000;

/** openat2 `resolve` flags. */
export const RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04;
/** openat2 `resolve` flags. */
export const RESOLVE_BENEATH = 0x08, RESOLVE_IN_ROOT = 0x10;

/** Same number on x86_64 and aarch64 (syscalls added after 5.0 share one table). */
const SYS_openat2 = 437;

/**
 * A device number as glibc's `makedev` encodes it (also the encoding of
 * `Deno.FileInfo.rdev`).
 *
 * @example
 * ```ts
 * makedev(1, 3); // 259n, /dev/null
 * ```
 */
export function makedev(major: number, minor: number): bigint {
  const maj = BigInt(major), min = BigInt(minor);
  return ((maj & 0xfffff000n) << 32n) | ((maj & 0xfffn) << 8n) |
    ((min & 0xffffff00n) << 12n) | (min & 0xffn);
}

/**
 * Creates a file system node: a device (`S_IFCHR`/`S_IFBLK` with `dev`), a FIFO
 * or a socket. The umask applies to the permission bits.
 *
 * @example
 * ```ts
 * mknod("/srv/jail/dev/null", S_IFCHR | 0o666, makedev(1, 3));
 * ```
 */
export function mknod(path: string, mode: number, dev = 0n): void {
  if (libc().mknod(cstr(path, "mknod"), mode, dev) !== 0) {
    throw fail(errno(), "mknod", path, octal(mode), dev);
  }
}

/**
 * Changes the owner of a path without following a final symlink.
 *
 * @example
 * ```ts
 * lchown("/srv/jail/home/alice", 1000, 1000);
 * ```
 */
export function lchown(path: string, uid: number, gid: number): void {
  if (libc().lchown(cstr(path, "lchown"), uid, gid) !== 0) {
    throw fail(errno(), "lchown", path, uid, gid);
  }
}

/**
 * Changes the owner of an open file.
 *
 * @example
 * ```ts
 * fchown(fd, 0, 0);
 * ```
 */
export function fchown(fd: number, uid: number, gid: number): void {
  if (libc().fchown(fd, uid, gid) !== 0) throw fail(errno(), "fchown", fd, uid, gid);
}

/**
 * Changes the mode of an open file.
 *
 * @example
 * ```ts
 * fchmod(fd, 0o644);
 * ```
 */
export function fchmod(fd: number, mode: number): void {
  if (libc().fchmod(fd, mode) !== 0) throw fail(errno(), "fchmod", fd, octal(mode));
}

/**
 * Opens `path` relative to `dirfd` (`AT_FDCWD` for the working directory) and
 * returns the fd. O_CLOEXEC is always added.
 *
 * @example
 * ```ts
 * const fd = openat(dirfd, "etc/passwd", O_RDONLY | O_NOFOLLOW);
 * ```
 */
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  const fd = libc().openat(dirfd, cstr(path, "openat"), flags | O_CLOEXEC, mode);
  if (fd < 0) throw fail(errno(), "openat", dirfd, path, octal(flags));
  return fd;
}

/**
 * Opens `path` and returns the fd. O_CLOEXEC is always added.
 *
 * @example
 * ```ts
 * const root = open("/srv/jail", O_PATH | O_DIRECTORY | O_NOFOLLOW);
 * ```
 */
export function open(path: string, flags: number, mode = 0): number {
  const fd = libc().openat(AT_FDCWD, cstr(path, "open"), flags | O_CLOEXEC, mode);
  if (fd < 0) throw fail(errno(), "open", path, octal(flags));
  return fd;
}

/** The `struct open_how` of openat2. */
export interface OpenHow {
  /** `O_*` flags; O_CLOEXEC is always added. */
  flags: number;
  /** Permission bits for O_CREAT (default 0). */
  mode?: number;
  /** `RESOLVE_*` flags. */
  resolve: number;
}

/**
 * openat2(2) (Linux 5.6+): opens `path` relative to `dirfd` under `resolve`
 * rules. With `RESOLVE_IN_ROOT`, "/" and ".." and absolute symlinks stay
 * inside `dirfd`, which is how a root process can safely open a path inside a
 * jail owned by someone else.
 *
 * @example
 * ```ts
 * const jail = open("/srv/jail", O_PATH | O_DIRECTORY);
 * const fd = openat2(jail, "home/alice/.profile", {
 *   flags: O_RDONLY | O_NOFOLLOW,
 *   resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
 * });
 * ```
 */
export function openat2(dirfd: number, path: string, how: OpenHow): number {
  const openHow = new BigUint64Array([
    BigInt(how.flags | O_CLOEXEC),
    BigInt(how.mode ?? 0),
    BigInt(how.resolve),
  ]);
  const r = libc().syscall(BigInt(SYS_openat2), BigInt(dirfd), cstr(path, "openat2"), openHow, 24n);
  if (Number(r) < 0) {
    const err = errno();
    const shown = raw(
      `{flags: 0o${how.flags.toString(8)}, resolve: 0x${how.resolve.toString(16)}}`,
    );
    throw fail(err, "openat2", dirfd, path, shown);
  }
  return Number(r);
}

/** What `fstat` reports about an open file. */
export interface FileStat {
  /** Device holding the file, `makedev` encoding. */
  dev: bigint;
  ino: bigint;
  /** Type and permission bits. */
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Device number of a device node, `makedev` encoding. */
  rdev: bigint;
  size: number;
}

/**
 * Status of an open file (statx with AT_EMPTY_PATH, whose layout is the same
 * on every architecture).
 *
 * @example
 * ```ts
 * (fstat(fd).mode & S_IFMT) === S_IFREG;
 * ```
 */
export function fstat(fd: number): FileStat {
  const buf = new Uint8Array(256);
  if (libc().statx(fd, new Uint8Array(1), AT_EMPTY_PATH, 0x7ff, buf) !== 0) {
    throw fail(errno(), "fstat", fd);
  }
  const v = new DataView(buf.buffer);
  return {
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    ino: v.getBigUint64(32, true),
    size: Number(v.getBigUint64(40, true)),
    rdev: makedev(v.getUint32(128, true), v.getUint32(132, true)),
    dev: makedev(v.getUint32(136, true), v.getUint32(140, true)),
  };
}

/**
 * Reads up to `into.length` bytes from `fd`; returns the count (0 at end of
 * file). Retries on EINTR.
 *
 * @example
 * ```ts
 * const n = read(fd, new Uint8Array(4096));
 * ```
 */
export function read(fd: number, into: Uint8Array): number {
  for (;;) {
    const n = Number(libc().read(fd, into, BigInt(into.length)));
    if (n >= 0) return n;
    const err = errno();
    if (err !== EINTR) throw fail(err, "read", fd, into.length);
  }
}

/**
 * Reads up to `into.length` bytes at `offset` without moving the file offset.
 * Retries on EINTR.
 *
 * @example
 * ```ts
 * const n = pread(fd, new Uint8Array(7), 0);
 * ```
 */
export function pread(fd: number, into: Uint8Array, offset: number): number {
  for (;;) {
    const n = Number(libc().pread(fd, into, BigInt(into.length), BigInt(offset)));
    if (n >= 0) return n;
    const err = errno();
    if (err !== EINTR) throw fail(err, "pread", fd, into.length, offset);
  }
}

/**
 * Writes all of `data` to `fd` (looping over short writes, retrying EINTR).
 * Usable after `closeFrom`, when the runtime's own I/O no longer works.
 *
 * @example
 * ```ts
 * write(2, new TextEncoder().encode("jk_chrootsh: cannot execute /bin/sh\n"));
 * ```
 */
export function write(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) {
    const rest = data.subarray(done);
    const n = Number(libc().write(fd, rest, BigInt(rest.length)));
    if (n >= 0) {
      done += n;
      continue;
    }
    const err = errno();
    if (err !== EINTR) throw fail(err, "write", fd, rest.length);
  }
}

/**
 * Closes an fd. Not retried on EINTR: on Linux the fd is gone either way.
 *
 * @example
 * ```ts
 * close(fd);
 * ```
 */
export function close(fd: number): void {
  if (libc().close(fd) !== 0) {
    const err = errno();
    if (err !== EINTR) throw fail(err, "close", fd);
  }
}

/**
 * Closes every fd from `lowest` up (glibc aborts the process if it cannot).
 * This also closes the runtime's epoll and event fds: afterwards do not await
 * anything or return to the event loop; only synchronous FFI calls, `write`,
 * `execve` and `exitNow` remain usable.
 *
 * @example
 * ```ts
 * closeFrom(3);
 * ```
 */
export function closeFrom(lowest: number): void {
  libc().closefrom(lowest);
}

/** `close_range` flag: mark close-on-exec instead of closing. */
export const CLOSE_RANGE_CLOEXEC = 4;

/**
 * close_range(2) (Linux 5.9+; CLOSE_RANGE_CLOEXEC 5.11+). With
 * `CLOSE_RANGE_CLOEXEC` the fds stay open until execve, so the runtime keeps
 * working if the exec fails.
 *
 * @example
 * ```ts
 * closeRange(3, 0xffffffff, CLOSE_RANGE_CLOEXEC);
 * ```
 */
export function closeRange(first: number, last: number, flags = 0): void {
  if (libc().close_range(first, last, flags) !== 0) {
    throw fail(errno(), "close_range", first, last, flags);
  }
}

// ---------------------------------------------------------------------------
// AF_UNIX datagram sockets (syslog to /dev/log, which Deno refuses without -A)

/** Socket constants. SOCK_CLOEXEC is always added by `socket`. */
export const AF_UNIX = 1, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0o2000000, SOCK_NONBLOCK = 0o4000;
/** `send` flags: do not block; no SIGPIPE on a broken connection. */
export const MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;

/** Room for a path in `struct sockaddr_un` (108 bytes including the NUL). */
const SUN_PATH_MAX = 108;

/**
 * Creates a socket and returns its fd; SOCK_CLOEXEC is always added.
 *
 * @example
 * ```ts
 * const fd = socket(AF_UNIX, SOCK_DGRAM);
 * ```
 */
export function socket(domain: number, type: number, protocol = 0): number {
  const fd = libc().socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw fail(errno(), "socket", domain, type, protocol);
  return fd;
}

/**
 * Connects a socket to an AF_UNIX path. A connected socket keeps working after
 * chroot and after dropping privileges.
 *
 * @example
 * ```ts
 * connectUnix(fd, "/dev/log");
 * ```
 */
export function connectUnix(fd: number, path: string): void {
  const name = cstr(path, "connect");
  if (name.length > SUN_PATH_MAX) throw new LibcError(`connect(${fd}, ${q(path)})`, ENAMETOOLONG);
  // struct sockaddr_un { sa_family_t sun_family (u16); char sun_path[108] }
  const address = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, 2);
  if (libc().connect(fd, address, 2 + name.length) !== 0) {
    throw fail(errno(), "connect", fd, path);
  }
}

/**
 * Sends `data` on a connected socket; returns the number of bytes sent.
 *
 * @example
 * ```ts
 * send(fd, new TextEncoder().encode("<38>..."), MSG_DONTWAIT | MSG_NOSIGNAL);
 * ```
 */
export function send(fd: number, data: Uint8Array, flags = 0): number {
  const n = Number(libc().send(fd, data, BigInt(data.length), flags));
  if (n < 0) throw fail(errno(), "send", fd, data.length, flags);
  return n;
}

// ---------------------------------------------------------------------------
// Leaving the process

/**
 * Replaces the process image. Returns only by throwing. `argv[0]` is passed as
 * given (a leading "-" marks a login shell). The argv and envp arrays stay
 * referenced until the call has returned.
 *
 * @example
 * ```ts
 * execve("/bin/bash", ["-bash"], ["PATH=/usr/bin:/bin", "HOME=/home/alice"]);
 * ```
 */
export function execve(path: string, argv: readonly string[], envp: readonly string[]): never {
  const file = cstr(path, "execve");
  const args = cstrArray([...argv], "execve argument");
  const env = cstrArray([...envp], "execve environment entry");
  pinned.current = [file, args, env];
  const r = libc().execve(file, args.array, env.array);
  const err = errno();
  pinned.current = null;
  throw fail(r === -1 ? err : EINVAL, "execve", path);
}

/**
 * Ends the process at once with `code` (`_exit`): no unload handlers, no
 * flushing, no event loop. The way out after `closeFrom`.
 *
 * @example
 * ```ts
 * exitNow(127);
 * ```
 */
export function exitNow(code: number): never {
  libc()._exit(code);
  throw new Error("_exit returned"); // unreachable
}

// ---------------------------------------------------------------------------
// The environment handed over by shells/trampoline.c

/** First bytes of the trampoline's environment memfd. */
export const TRAMPOLINE_ENV_MAGIC = "JKENV1\n";
/** The trampoline writes at most this many bytes, magic included. */
export const TRAMPOLINE_ENV_MAX = 256 * 1024;
/** The fd the trampoline leaves the environment on. */
export const TRAMPOLINE_ENV_FD = 3;

/**
 * The caller's environment as the privileged trampoline handed it over on fd
 * 3: `JKENV1\n` followed by NUL-terminated `NAME=value` entries. Returns
 * `null`, leaving fd 3 alone, unless fd 3 is a regular file (a memfd is one)
 * that starts with the magic. Without the trampoline fd 3 may be the runtime's
 * own epoll fd or anything the caller passed in: reading a pipe or terminal
 * could block or eat input, and closing it could break the runtime. The magic
 * is read with pread, which does not move a file offset that is not ours.
 *
 * When the magic matches, fd 3 is closed and the entries are returned. The
 * content is the untrusted caller's: read at most 256 KiB, drop an
 * unterminated last entry, entries without a name or "=" and entries that are
 * not valid UTF-8; on a repeated name the first wins, as with getenv(3).
 *
 * @example
 * ```ts
 * const callerEnv = readTrampolineEnvironment() ?? new Map();
 * const term = callerEnv.get("TERM");
 * ```
 */
export function readTrampolineEnvironment(): Map<string, string> | null {
  const fd = TRAMPOLINE_ENV_FD;
  let status: FileStat;
  try {
    status = fstat(fd);
  } catch (e) {
    if (e instanceof LibcError && e.errno === EBADF) return null;
    throw e;
  }
  if ((status.mode & S_IFMT) !== S_IFREG) return null;
  const magic = encoder.encode(TRAMPOLINE_ENV_MAGIC);
  const head = new Uint8Array(magic.length);
  if (pread(fd, head, 0) !== magic.length || head.some((b, i) => b !== magic[i])) return null;

  const data = new Uint8Array(TRAMPOLINE_ENV_MAX);
  let length = 0;
  while (length < data.length) {
    const n = pread(fd, data.subarray(length), length);
    if (n === 0) break;
    length += n;
  }
  close(fd);
  return parseEnvironmentEntries(data.subarray(magic.length, length));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Splits NUL-terminated `NAME=value` entries; see `readTrampolineEnvironment`. */
function parseEnvironmentEntries(bytes: Uint8Array): Map<string, string> {
  const env = new Map<string, string>();
  let start = 0;
  for (let end = bytes.indexOf(0); end >= 0; start = end + 1, end = bytes.indexOf(0, start)) {
    let entry: string;
    try {
      entry = strictUtf8.decode(bytes.subarray(start, end));
    } catch {
      continue;
    }
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (!env.has(name)) env.set(name, entry.slice(eq + 1));
  }
  return env;
}

function q(text: string): string {
  return JSON.stringify(text);
}
