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
 * (notes §1.4), so a scoped grant fails at the first call rather than at the
 * first error. Deno documents `--allow-ffi` as equivalent to `--allow-all`.
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

import { JkError } from "./errors.ts";

// ---------------------------------------------------------------------------
// Library path and symbol table

/** x86_64 and aarch64 differ in a few constants (O_DIRECTORY, O_NOFOLLOW, syscall numbers). */
const X86_64 = Deno.build.arch === "x86_64";

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
  // --- added for src/privileged.ts (issue 4 part A): see "Irreversibility probes" below
  syscall_ids: { name: "syscall", parameters: ["i64", "u64", "u64", "u64"], result: "i64" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// ---------------------------------------------------------------------------
// Lazy opening and binding
//
// `Deno.dlopen` of a function table compiles a call trampoline for every
// symbol when the library is opened: about 0.25 ms each, 12 ms for `SYMBOLS`,
// more than all the rest of jk_chrootsh's work on the login path. So the main
// table is opened as addresses only (`type: "pointer"` statics: a dlsym each,
// no code generated) and each function is bound on its first use through
// `Deno.UnsafeFnPointer`, with the same signature. Such a call costs about
// 2 µs more than a trampoline's. The *at() table (`JAILFS_SYMBOLS`) is bound
// the same way (jk_cp makes a few hundred such calls: less than its dlopen);
// the per-message table (`SOCKETD_SYMBOLS`) stays a `Deno.dlopen` table,
// opened on its first use. Resolution is the same either way: dlsym on the handle of
// the same libc path (every name must resolve, or the path is refused).

/** A function table as addresses: each entry a `pointer` static of the same C name. */
function addressesOf<S extends Record<string, Deno.ForeignFunction>>(
  defs: S,
): Record<keyof S, { name: string; type: "pointer" }> {
  return Object.fromEntries(
    Object.entries(defs).map(([key, def]) => [
      key,
      { name: def.name === undefined ? key : String(def.name), type: "pointer" as const },
    ]),
  ) as Record<keyof S, { name: string; type: "pointer" }>;
}

/** `SYMBOLS` as addresses. */
const ADDRESSES = addressesOf(SYMBOLS);

/**
 * An object with one function per entry of `defs`, each bound on first access
 * to the address in `addresses` (same keys) with its definition.
 */
function bindOnFirstUse<S extends Record<string, Deno.ForeignFunction>>(
  addresses: Record<keyof S, unknown>,
  defs: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const bound = {} as Record<string, unknown>;
  for (const key of Object.keys(defs)) {
    Object.defineProperty(bound, key, {
      configurable: true,
      enumerable: true,
      get() {
        const address = addresses[key] as Deno.PointerObject<S[string]> | null;
        if (address === null) throw new JkError(`libc: no address for ${key}`);
        const fn = new Deno.UnsafeFnPointer(address, defs[key]);
        const call = fn.call.bind(fn);
        Object.defineProperty(bound, key, { value: call, enumerable: true });
        return call;
      },
    });
  }
  return bound as Deno.DynamicLibrary<S>["symbols"];
}

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
      const lib = Deno.dlopen(path, ADDRESSES);
      const symbols = bindOnFirstUse(lib.symbols, SYMBOLS);
      const location = symbols.__errno_location();
      if (location === null) throw new Error("__errno_location returned NULL");
      const errno = new Deno.UnsafePointerView(location);
      // A path-scoped --allow-ffi opens the library and makes successful calls,
      // but reading errno (or any pointer) fails. Fail here, at the first call,
      // rather than at the first error.
      errno.getInt32();
      return { path, symbols, errno };
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
function cstr(text: string | Uint8Array, what: string): Uint8Array<ArrayBuffer> {
  const bytes = typeof text === "string" ? encoder.encode(text) : text;
  if (bytes.includes(0)) {
    const shown = typeof text === "string" ? text : new TextDecoder().decode(text);
    throw new JkError(`${what}: ${JSON.stringify(shown)} contains a NUL byte`);
  }
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** A NULL-terminated `char *[]` and the strings it points to (keep both alive). */
function cstrArray(
  items: (string | Uint8Array)[],
  what: string,
): { array: BigUint64Array; strings: unknown[] } {
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
const GLIBC_INTERNAL_SIGNALS = [32, 33];
const SYS_rt_sigaction = X86_64 ? 13 : 134;

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
 * Sets every signal but SIGKILL and SIGSTOP back to its default disposition.
 * Call it right before execve only: it also removes the runtime's own handlers
 * (its stack-overflow guard, Deno signal listeners, the child-reaping SIGCHLD
 * handler).
 *
 * glibc's signal() refuses its internal signals 32 (SIGCANCEL) and 33
 * (SIGSETXID), yet a caller can pass them in ignored (glibc's own posix_spawn
 * sets them to SIG_IGN in every child, and Deno.Command spawns that way), and
 * an ignored signal survives execve. So these two are read with the raw
 * rt_sigaction syscall and reset when ignored; a handler glibc installed is
 * left in place (execve resets it, and SIGSETXID's is what makes setresuid
 * reach every thread).
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
    if (signo === SIGKILL || signo === SIGSTOP) continue;
    if (GLIBC_INTERNAL_SIGNALS.includes(signo)) resetIfIgnored(signo);
    else signal(signo, SIG_DFL);
  }
}

/** Resets an ignored signal through the raw syscall, bypassing glibc's refusal. */
function resetIfIgnored(signo: number): void {
  // kernel struct sigaction (x86_64 and arm64): handler, flags, restorer, mask: 4 x u64
  const old = new BigUint64Array(4);
  const nr = BigInt(SYS_rt_sigaction), sig = BigInt(signo);
  if (Number(libc().syscall(nr, sig, null, old, 8n)) !== 0) {
    throw fail(errno(), "rt_sigaction", signo);
  }
  if (old[0] !== SIG_IGN) return;
  const byDefault = new BigUint64Array(4); // SIG_DFL, no flags, empty mask
  if (Number(libc().syscall(nr, sig, byDefault, null, 8n)) !== 0) {
    throw fail(errno(), "rt_sigaction", signo, raw("SIG_DFL"));
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
export function execve(
  path: string,
  argv: readonly (string | Uint8Array)[],
  envp: readonly string[],
): never {
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

// ---------------------------------------------------------------------------
// Irreversibility probes and the ambient set (added for src/privileged.ts, issue 4 part A)

/** Raw syscall numbers of the id calls (x86_64 and aarch64 differ). */
const SYS_IDS = X86_64
  ? { setgroups: 116, setresuid: 117, setresgid: 119 }
  : { setgroups: 159, setresuid: 147, setresgid: 149 };

/**
 * Asks the kernel, for the calling thread only, to set all three user or
 * group ids to `id`, and returns 0 or the errno. A probe: after a drop, the
 * answer must be EPERM. It is a raw syscall on purpose: glibc's setresuid
 * changes every thread and calls abort() when the threads disagree (as they
 * would if another thread kept a capability the calling thread shed with the
 * per-thread capset), and a probe must not change other threads either way.
 * If a probe ever returns 0, the calling thread has regained the ids: the
 * caller must end the process at once.
 *
 * @example
 * ```ts
 * if (probeSetIds("setresuid", 0) !== EPERM) exitNow(36);
 * ```
 */
export function probeSetIds(call: "setresuid" | "setresgid", id: number): number {
  const n = BigInt(id >>> 0);
  const r = libc().syscall_ids(BigInt(SYS_IDS[call]), n, n, n);
  return r === 0n ? 0 : errno();
}

/**
 * Like `probeSetIds`, for the supplementary groups: asks the kernel to set
 * them to `gids` on the calling thread only; returns 0 or the errno.
 *
 * @example
 * ```ts
 * probeSetgroups([0]); // EPERM once privileges are gone
 * ```
 */
export function probeSetgroups(gids: readonly number[]): number {
  const list = Uint32Array.from(gids);
  const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(list)));
  pinned.current = list;
  const r = libc().syscall_ids(BigInt(SYS_IDS.setgroups), BigInt(list.length), address, 0n);
  const err = r === 0n ? 0 : errno();
  pinned.current = null;
  return err;
}

const PR_CAP_AMBIENT_IS_SET = 1;

/**
 * The calling thread's ambient capabilities as a mask (bit n = capability n),
 * asked one capability at a time until the kernel's last one.
 *
 * @example
 * ```ts
 * clearAmbientCapabilities();
 * ambientCapabilities(); // 0n
 * ```
 */
export function ambientCapabilities(): bigint {
  let mask = 0n;
  for (let cap = 0; cap < 64; cap++) {
    const r = libc().prctl(PR_CAP_AMBIENT, BigInt(PR_CAP_AMBIENT_IS_SET), BigInt(cap), 0n, 0n);
    if (r < 0) {
      const err = errno();
      if (err === EINVAL) break; // past the kernel's last capability
      throw fail(err, "prctl", raw("PR_CAP_AMBIENT"), raw("PR_CAP_AMBIENT_IS_SET"), cap);
    }
    if (r === 1) mask |= 1n << BigInt(cap);
  }
  return mask;
}

// ===========================================================================
// BEGIN jailfs block (issue 3 part A: src/jailfs.ts, src/jailcopy.ts).
// *at() calls for working inside a directory fd, so that a root tool never
// resolves a jail path as a string. These symbols live in a second table,
// opened lazily on the same libc (dlopen returns the loaded instance, so
// errno is shared with the table above).

const JAILFS_SYMBOLS = {
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  renameat2: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  fchownat: { parameters: ["i32", "buffer", "u32", "u32", "i32"], result: "i32" },
  linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
  readlinkat: { parameters: ["i32", "buffer", "buffer", "usize"], result: "isize" },
  mknodat: { parameters: ["i32", "buffer", "u32", "u64"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  copy_file_range: {
    parameters: ["i32", "buffer", "i32", "buffer", "usize", "u32"],
    result: "isize",
  },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
} as const satisfies Deno.ForeignLibraryInterface;

let jailfsSymbols: Deno.DynamicLibrary<typeof JAILFS_SYMBOLS>["symbols"] | null = null;

/**
 * The table, bound on first use like the main one: a `Deno.dlopen` of its
 * functions cost jk_cp 4 ms of trampolines, more than the ~2 µs per call
 * saved over its few hundred calls.
 */
function atLibc(): Deno.DynamicLibrary<typeof JAILFS_SYMBOLS>["symbols"] {
  return jailfsSymbols ??= bindOnFirstUse(
    Deno.dlopen(libcPath(), addressesOf(JAILFS_SYMBOLS)).symbols,
    JAILFS_SYMBOLS,
  );
}

/** errno values the jail file-system code tests for. */
export const EEXIST = 17, EXDEV = 18, ENOTDIR = 20, EISDIR = 21, ENOSYS = 38;
/** errno values the jail file-system code tests for. */
export const ENOTEMPTY = 39, ELOOP = 40, EOPNOTSUPP = 95, EMLINK = 31;

/** `*at()` flags. */
export const AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200, AT_SYMLINK_FOLLOW = 0x400;
/** renameat2 flags. */
export const RENAME_NOREPLACE = 1;
/** An unnamed file in a directory (`O_TMPFILE` includes O_DIRECTORY, as in glibc). */
export const O_TMPFILE = 0o20000000 | O_DIRECTORY;

/** A time stamp with nanoseconds. */
export interface Timespec {
  sec: number;
  nsec: number;
}

/** `fstat` plus the times, from statx. */
export interface FullStat extends FileStat {
  atime: Timespec;
  mtime: Timespec;
}

function parseStatx(buf: Uint8Array): FullStat {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const time = (at: number) => ({
    sec: Number(v.getBigInt64(at, true)),
    nsec: v.getUint32(at + 8, true),
  });
  return {
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    ino: v.getBigUint64(32, true),
    size: Number(v.getBigUint64(40, true)),
    atime: time(64),
    mtime: time(112),
    rdev: makedev(v.getUint32(128, true), v.getUint32(132, true)),
    dev: makedev(v.getUint32(136, true), v.getUint32(140, true)),
  };
}

const statxBuffer = new Uint8Array(256);
const EMPTY_CSTR = new Uint8Array(1);

/**
 * Status of `path` relative to `dirfd` (statx), or null when it does not exist
 * (ENOENT). Pass `AT_SYMLINK_NOFOLLOW` to look at a symlink itself; `path` ""
 * with `AT_EMPTY_PATH` is not needed: use `fstatFull`.
 *
 * @example
 * ```ts
 * const st = statAt(dirfd, "libc.so.6", AT_SYMLINK_NOFOLLOW);
 * ```
 */
export function statAt(dirfd: number, path: string, flags: number): FullStat | null {
  if (atLibc().statx(dirfd, cstr(path, "statx"), flags, 0x7ff, statxBuffer) !== 0) {
    const err = errno();
    if (err === ENOENT) return null;
    throw fail(err, "statx", dirfd, path);
  }
  return parseStatx(statxBuffer);
}

/**
 * Status of an open fd, with times.
 *
 * @example
 * ```ts
 * fstatFull(fd).mtime.sec;
 * ```
 */
export function fstatFull(fd: number): FullStat {
  if (atLibc().statx(fd, EMPTY_CSTR, AT_EMPTY_PATH, 0x7ff, statxBuffer) !== 0) {
    throw fail(errno(), "fstat", fd);
  }
  return parseStatx(statxBuffer);
}

/**
 * Creates a directory `name` in `dirfd` (the umask applies).
 *
 * @example
 * ```ts
 * mkdirat(jailRootFd, "etc", 0o700);
 * ```
 */
export function mkdirat(dirfd: number, name: string, mode: number): void {
  if (atLibc().mkdirat(dirfd, cstr(name, "mkdirat"), mode) !== 0) {
    throw fail(errno(), "mkdirat", dirfd, name, octal(mode));
  }
}

/**
 * Creates a symlink `name` in `dirfd` holding `target`; EEXIST if `name` exists.
 *
 * @example
 * ```ts
 * symlinkat("usr/lib", jailRootFd, "lib");
 * ```
 */
export function symlinkat(target: string, dirfd: number, name: string): void {
  if (atLibc().symlinkat(cstr(target, "symlinkat"), dirfd, cstr(name, "symlinkat")) !== 0) {
    throw fail(errno(), "symlinkat", target, dirfd, name);
  }
}

/**
 * Renames within or across directory fds; `RENAME_NOREPLACE` fails with EEXIST
 * instead of replacing.
 *
 * @example
 * ```ts
 * renameat2(dirfd, ".jk_tmp.1", dirfd, "ls", 0);
 * ```
 */
export function renameat2(
  olddirfd: number,
  oldName: string,
  newdirfd: number,
  newName: string,
  flags: number,
): void {
  const r = atLibc().renameat2(
    olddirfd,
    cstr(oldName, "renameat2"),
    newdirfd,
    cstr(newName, "renameat2"),
    flags,
  );
  if (r !== 0) throw fail(errno(), "renameat2", olddirfd, oldName, newdirfd, newName, flags);
}

/**
 * Removes `name` from `dirfd` (a directory with `AT_REMOVEDIR`). Never follows a symlink.
 *
 * @example
 * ```ts
 * unlinkat(dirfd, "old.so", 0);
 * ```
 */
export function unlinkat(dirfd: number, name: string, flags: number): void {
  if (atLibc().unlinkat(dirfd, cstr(name, "unlinkat"), flags) !== 0) {
    throw fail(errno(), "unlinkat", dirfd, name, flags);
  }
}

/**
 * Changes the owner of `name` in `dirfd`; with `AT_SYMLINK_NOFOLLOW` a symlink itself.
 *
 * @example
 * ```ts
 * fchownat(dirfd, "null", 0, 0, AT_SYMLINK_NOFOLLOW);
 * ```
 */
export function fchownat(
  dirfd: number,
  name: string,
  uid: number,
  gid: number,
  flags: number,
): void {
  if (atLibc().fchownat(dirfd, cstr(name, "fchownat"), uid, gid, flags) !== 0) {
    throw fail(errno(), "fchownat", dirfd, name, uid, gid, flags);
  }
}

/**
 * Makes a hard link `newName` in `newdirfd`. With `oldName` "" and `emptyPath`
 * true, links the open file `olddirfd` itself (AT_EMPTY_PATH; needs
 * CAP_DAC_READ_SEARCH), which also gives an O_TMPFILE file its first name.
 * Fails with EEXIST if `newName` exists.
 *
 * @example
 * ```ts
 * linkat(tmpFd, "", dirfd, "ls", true);
 * ```
 */
export function linkat(
  olddirfd: number,
  oldName: string,
  newdirfd: number,
  newName: string,
  emptyPath: boolean,
): void {
  const r = atLibc().linkat(
    olddirfd,
    cstr(oldName, "linkat"),
    newdirfd,
    cstr(newName, "linkat"),
    emptyPath ? AT_EMPTY_PATH : 0,
  );
  if (r !== 0) throw fail(errno(), "linkat", olddirfd, oldName, newdirfd, newName);
}

const linkBuffer = new Uint8Array(4097);
const lenientUtf8 = new TextDecoder();

/**
 * The target of the symlink `name` in `dirfd` (at most 4096 bytes).
 *
 * @example
 * ```ts
 * readlinkat(jailRootFd, "lib"); // "usr/lib"
 * ```
 */
export function readlinkat(dirfd: number, name: string): string {
  const n = Number(atLibc().readlinkat(dirfd, cstr(name, "readlinkat"), linkBuffer, 4097n));
  if (n < 0) throw fail(errno(), "readlinkat", dirfd, name);
  if (n > 4096) throw new LibcError(`readlinkat(${dirfd}, ${q(name)})`, ENAMETOOLONG);
  return lenientUtf8.decode(linkBuffer.subarray(0, n));
}

/**
 * Creates a device node, FIFO or socket `name` in `dirfd` (the umask applies).
 *
 * @example
 * ```ts
 * mknodat(devFd, "null", S_IFCHR | 0o666, makedev(1, 3));
 * ```
 */
export function mknodat(dirfd: number, name: string, mode: number, dev: bigint): void {
  if (atLibc().mknodat(dirfd, cstr(name, "mknodat"), mode, dev) !== 0) {
    throw fail(errno(), "mknodat", dirfd, name, octal(mode), dev);
  }
}

function timespecs(atime: Timespec, mtime: Timespec): BigInt64Array {
  return new BigInt64Array([
    BigInt(atime.sec),
    BigInt(atime.nsec),
    BigInt(mtime.sec),
    BigInt(mtime.nsec),
  ]);
}

/**
 * Sets access and modification times of `name` in `dirfd`
 * (`AT_SYMLINK_NOFOLLOW`: of a symlink itself).
 *
 * @example
 * ```ts
 * utimensat(dirfd, "null", st.atime, st.mtime, AT_SYMLINK_NOFOLLOW);
 * ```
 */
export function utimensat(
  dirfd: number,
  name: string,
  atime: Timespec,
  mtime: Timespec,
  flags: number,
): void {
  const r = atLibc().utimensat(dirfd, cstr(name, "utimensat"), timespecs(atime, mtime), flags);
  if (r !== 0) throw fail(errno(), "utimensat", dirfd, name);
}

/**
 * Sets access and modification times of an open file.
 *
 * @example
 * ```ts
 * futimens(fd, source.atime, source.mtime);
 * ```
 */
export function futimens(fd: number, atime: Timespec, mtime: Timespec): void {
  if (atLibc().futimens(fd, timespecs(atime, mtime)) !== 0) throw fail(errno(), "futimens", fd);
}

/**
 * copy_file_range(2) from the current offsets of `from` to `to`, up to
 * `length` bytes; returns the count copied (0 at end of file). Retries EINTR.
 *
 * @example
 * ```ts
 * while (copyFileRange(src, dst, 1 << 30) > 0);
 * ```
 */
export function copyFileRange(from: number, to: number, length: number): number {
  for (;;) {
    const n = Number(atLibc().copy_file_range(from, null, to, null, BigInt(length), 0));
    if (n >= 0) return n;
    const err = errno();
    if (err !== EINTR) throw fail(err, "copy_file_range", from, to, length);
  }
}

/** One directory entry from `readDirFd`. */
export interface DirEntry {
  name: string;
  /** `d_type`: 4 directory, 8 regular, 10 symlink, 2 char, 6 block, 1 FIFO, 12 socket, 0 unknown. */
  type: number;
}

const dentsBuffer = new Uint8Array(64 * 1024);

/**
 * Every entry of the directory open (O_RDONLY|O_DIRECTORY) at `fd`, without
 * "." and "..", in the order the file system returns them.
 *
 * @example
 * ```ts
 * readDirFd(fd).map((e) => e.name);
 * ```
 */
export function readDirFd(fd: number): DirEntry[] {
  const out: DirEntry[] = [];
  const view = new DataView(dentsBuffer.buffer);
  for (;;) {
    const n = Number(atLibc().getdents64(fd, dentsBuffer, BigInt(dentsBuffer.length)));
    if (n < 0) {
      const err = errno();
      if (err === EINTR) continue;
      throw fail(err, "getdents64", fd);
    }
    if (n === 0) return out;
    // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    for (let at = 0; at < n;) {
      const reclen = view.getUint16(at + 16, true);
      if (reclen < 20 || at + reclen > n) throw new LibcError(`getdents64(${fd})`, EINVAL);
      const type = dentsBuffer[at + 18];
      const nameEnd = dentsBuffer.indexOf(0, at + 19);
      if (nameEnd < 0 || nameEnd >= at + reclen) throw new LibcError(`getdents64(${fd})`, EINVAL);
      const name = lenientUtf8.decode(dentsBuffer.subarray(at + 19, nameEnd));
      if (name !== "." && name !== "..") out.push({ name, type });
      at += reclen;
    }
  }
}
// END jailfs block
// ===========================================================================

// ===========================================================================
// BEGIN socketd block (issue 6: src/jk_socketd.ts, src/jk_chrootlaunch.ts).
// AF_UNIX datagram sockets with the sender's kernel-verified credentials
// (SO_PASSCRED, SCM_CREDENTIALS), descriptor passing (SCM_RIGHTS), poll, dup3
// and close-on-exec control. Deno's datagram API carries no ancillary data, and
// refuses /dev/log short of --allow-all. Second table on the same libc, as the
// jailfs block; file-system calls come from that block (statAt, unlinkat).

const SOCKETD_SYMBOLS = {
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // The same poll on a worker thread, so that an async caller keeps its event
  // loop (signals, child status) while it waits. errno is that thread's: a
  // failure is reported without it.
  poll_async: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // fcntl is variadic; an int third argument is passed as an int.
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  dup3: { parameters: ["i32", "i32", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let socketdSymbols: Deno.DynamicLibrary<typeof SOCKETD_SYMBOLS>["symbols"] | null = null;

function sockLibc(): Deno.DynamicLibrary<typeof SOCKETD_SYMBOLS>["symbols"] {
  return socketdSymbols ??= Deno.dlopen(libcPath(), SOCKETD_SYMBOLS).symbols;
}

/** Socket types and levels (x86_64 and aarch64 Linux). */
export const SOCK_STREAM = 1, SOCK_SEQPACKET = 5, SOL_SOCKET = 1, SO_PASSCRED = 16;
/** Control message types at `SOL_SOCKET`. */
export const SCM_RIGHTS = 1, SCM_CREDENTIALS = 2;
/** `recvmsg` flags and `msg_flags` bits. */
export const MSG_CTRUNC = 0x8, MSG_TRUNC = 0x20, MSG_CMSG_CLOEXEC = 0x40000000;
/** `poll` events. */
export const POLLIN = 0x1, POLLOUT = 0x4, POLLERR = 0x8, POLLHUP = 0x10, POLLNVAL = 0x20;
/** errno values the socket code tests for. */
export const EPIPE = 32, EMSGSIZE = 90, EADDRINUSE = 98, ECONNRESET = 104;

/** `struct sockaddr_un` for a path, refusing one that does not fit sun_path. */
function unixAddress(path: string, call: string, fd: number): Uint8Array<ArrayBuffer> {
  const name = cstr(path, call);
  if (name.length > SUN_PATH_MAX) throw new LibcError(`${call}(${fd}, ${q(path)})`, ENAMETOOLONG);
  const address = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(name, 2);
  return address.subarray(0, 2 + name.length) as Uint8Array<ArrayBuffer>;
}

/**
 * Binds a socket to an AF_UNIX path (relative paths resolve against the
 * working directory: `fchdir` to a directory fd first to bind inside it
 * without resolving its path again). The new socket file's mode is 0777 minus
 * the umask.
 *
 * @example
 * ```ts
 * bindUnix(fd, "log");
 * ```
 */
export function bindUnix(fd: number, path: string): void {
  const address = unixAddress(path, "bind", fd);
  if (sockLibc().bind(fd, address, address.length) !== 0) throw fail(errno(), "bind", fd, path);
}

/**
 * Sets an integer socket option.
 *
 * @example
 * ```ts
 * setSocketOption(fd, SOL_SOCKET, SO_PASSCRED, 1);
 * ```
 */
export function setSocketOption(fd: number, level: number, name: number, value: number): void {
  const v = new Int32Array([value]);
  if (sockLibc().setsockopt(fd, level, name, v, 4) !== 0) {
    throw fail(errno(), "setsockopt", fd, level, name, value);
  }
}

/**
 * A connected pair of AF_UNIX sockets of `type` (close-on-exec).
 *
 * @example
 * ```ts
 * const [mine, theirs] = socketpair(SOCK_SEQPACKET);
 * ```
 */
export function socketpair(type: number): [number, number] {
  const fds = new Int32Array(2);
  if (sockLibc().socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, fds) !== 0) {
    throw fail(errno(), "socketpair", AF_UNIX, type);
  }
  return [fds[0], fds[1]];
}

const F_GETFD = 1, F_SETFD = 2, FD_CLOEXEC = 1;

/**
 * Sets or clears close-on-exec on an fd: clear it on exactly the fds a child
 * must inherit, just before spawning it.
 *
 * @example
 * ```ts
 * setCloseOnExec(fd, false);
 * ```
 */
export function setCloseOnExec(fd: number, on: boolean): void {
  const flags = sockLibc().fcntl(fd, F_GETFD, 0);
  if (flags < 0) throw fail(errno(), "fcntl", fd, raw("F_GETFD"));
  const wanted = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (sockLibc().fcntl(fd, F_SETFD, wanted) !== 0) throw fail(errno(), "fcntl", fd, raw("F_SETFD"));
}

/**
 * Whether `fd` is close-on-exec; `null` when it is not open.
 *
 * @example
 * ```ts
 * closeOnExec(1); // false for an inherited stdout
 * ```
 */
export function closeOnExec(fd: number): boolean | null {
  const flags = sockLibc().fcntl(fd, F_GETFD, 0);
  if (flags >= 0) return (flags & FD_CLOEXEC) !== 0;
  const err = errno();
  if (err === EBADF) return null;
  throw fail(err, "fcntl", fd, raw("F_GETFD"));
}

/**
 * Makes `newFd` a copy of `oldFd` (closing what `newFd` was), without
 * close-on-exec unless `cloexec`. Used to put /dev/null on fds 0-2.
 *
 * @example
 * ```ts
 * dup3(devNull, 1, false);
 * ```
 */
export function dup3(oldFd: number, newFd: number, cloexec: boolean): void {
  if (sockLibc().dup3(oldFd, newFd, cloexec ? O_CLOEXEC : 0) < 0) {
    throw fail(errno(), "dup3", oldFd, newFd);
  }
}

/** One fd to watch with `poll`. */
export interface PollRequest {
  fd: number;
  /** `POLLIN`, `POLLOUT`, ... */
  events: number;
}

function pollBuffer(requests: readonly PollRequest[]): Uint8Array<ArrayBuffer> {
  // struct pollfd { int fd; short events; short revents; }
  const buf = new Uint8Array(Math.max(8, requests.length * 8));
  const v = new DataView(buf.buffer);
  requests.forEach((r, i) => {
    v.setInt32(i * 8, r.fd, true);
    v.setInt16(i * 8 + 4, r.events, true);
  });
  return buf;
}

function pollResults(buf: Uint8Array, count: number): number[] {
  const v = new DataView(buf.buffer);
  return Array.from({ length: count }, (_, i) => v.getUint16(i * 8 + 6, true));
}

/**
 * Waits up to `timeoutMs` (-1: no limit) on the calling thread until one of
 * the fds is ready; returns each fd's `revents` in order (all 0 on timeout or
 * EINTR).
 *
 * @example
 * ```ts
 * const [ready] = poll([{ fd, events: POLLIN }], 1000);
 * if (ready & POLLIN) receive();
 * ```
 */
export function poll(requests: readonly PollRequest[], timeoutMs: number): number[] {
  const buf = pollBuffer(requests);
  const r = sockLibc().poll(buf, BigInt(requests.length), timeoutMs);
  if (r < 0) {
    const err = errno();
    if (err !== EINTR) throw fail(err, "poll", requests.length, timeoutMs);
    return requests.map(() => 0);
  }
  return pollResults(buf, requests.length);
}

/**
 * `poll` on a worker thread: the event loop keeps running while it waits.
 * A failure (errno is unknown there) reads as a timeout; keep `timeoutMs`
 * short and loop.
 *
 * @example
 * ```ts
 * const [ready] = await pollAsync([{ fd, events: POLLIN }], 500);
 * ```
 */
export async function pollAsync(requests: readonly PollRequest[], timeoutMs: number) {
  const buf = pollBuffer(requests);
  const r = await sockLibc().poll_async(buf, BigInt(requests.length), timeoutMs);
  return r < 0 ? requests.map(() => 0) : pollResults(buf, requests.length);
}

/** The sender's process and ids as the kernel reports them (SCM_CREDENTIALS). */
export interface Credentials {
  pid: number;
  uid: number;
  gid: number;
}

/** One datagram from `MessageReceiver.receive`. */
export interface ReceivedMessage {
  /** The bytes received (a view into the receiver's buffer, valid until the next receive). */
  data: Uint8Array;
  /** The datagram's real length, larger than `data` when it was cut. */
  length: number;
  /** The datagram did not fit the buffer (MSG_TRUNC). */
  truncated: boolean;
  /** The sender's credentials, with `credentials: true` and SO_PASSCRED on the socket. */
  credentials: Credentials | null;
  /** Descriptors passed with SCM_RIGHTS (close-on-exec), with `maxFds` > 0. */
  fds: number[];
}

/** Options of a `MessageReceiver`. */
export interface ReceiverOptions {
  /** Largest datagram kept in full. */
  capacity: number;
  /** Room for the sender's credentials. */
  credentials?: boolean;
  /** Room for this many passed fds; the kernel closes any that do not fit. */
  maxFds?: number;
}

/** CMSG_ALIGN on LP64: 8 bytes. */
const cmsgAlign = (n: number) => (n + 7) & ~7;
/** sizeof(struct cmsghdr) on LP64. */
const CMSG_HEADER = 16;

/**
 * recvmsg(2) with its buffers allocated once (a relay calls it in a tight
 * loop). The control buffer has room only for what the options ask for:
 * descriptors that a sender passes beyond `maxFds` (by default all of them)
 * are discarded by the kernel, never installed in this process, so a jailed
 * client cannot fill our fd table. Always receives with MSG_TRUNC (to learn a
 * datagram's real length) and MSG_CMSG_CLOEXEC.
 *
 * @example
 * ```ts
 * const receiver = new MessageReceiver({ capacity: 8192, credentials: true });
 * const m = receiver.receive(fd, MSG_DONTWAIT);
 * if (m) console.log(m.credentials?.pid, m.data.length);
 * ```
 */
export class MessageReceiver {
  readonly #data: Uint8Array<ArrayBuffer>;
  readonly #control: Uint8Array<ArrayBuffer>;
  // Buffers whose addresses go into the msghdr are made from explicit
  // ArrayBuffers: those live outside the V8 heap and never move, while a small
  // typed array made from a length may sit on the heap, where a collection can
  // move it.
  readonly #iov = new BigUint64Array(new ArrayBuffer(16));
  readonly #header = new Uint8Array(56);
  readonly #headerView = new DataView(this.#header.buffer);
  readonly #controlView: DataView;

  /** @param options capacity and which ancillary data to make room for */
  constructor(options: ReceiverOptions) {
    this.#data = new Uint8Array(new ArrayBuffer(options.capacity));
    const room = (options.credentials ? cmsgAlign(CMSG_HEADER + 12) : 0) +
      (options.maxFds ? cmsgAlign(CMSG_HEADER + 4 * options.maxFds) : 0);
    this.#control = new Uint8Array(new ArrayBuffer(Math.max(room, 8)));
    this.#controlView = new DataView(this.#control.buffer);
    const address = (b: Uint8Array) =>
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>)));
    this.#iov[0] = address(this.#data);
    this.#iov[1] = BigInt(this.#data.length);
    // struct msghdr (LP64): name@0 namelen@8 iov@16 iovlen@24 control@32 controllen@40 flags@48
    this.#headerView.setBigUint64(16, address(new Uint8Array(this.#iov.buffer)), true);
    this.#headerView.setBigUint64(24, 1n, true);
    this.#headerView.setBigUint64(32, room > 0 ? address(this.#control) : 0n, true);
  }

  /**
   * Receives one datagram; `null` when none is waiting (EAGAIN with
   * MSG_DONTWAIT or on a non-blocking socket). Retries EINTR.
   */
  receive(fd: number, flags = 0): ReceivedMessage | null {
    const room = this.#headerView.getBigUint64(32, true) === 0n ? 0 : this.#control.length;
    for (;;) {
      this.#headerView.setBigUint64(40, BigInt(room), true);
      this.#headerView.setInt32(48, 0, true);
      const n = Number(
        sockLibc().recvmsg(fd, this.#header, flags | MSG_TRUNC | MSG_CMSG_CLOEXEC),
      );
      if (n < 0) {
        const err = errno();
        if (err === EINTR) continue;
        if (err === EAGAIN) return null;
        throw fail(err, "recvmsg", fd);
      }
      const msgFlags = this.#headerView.getInt32(48, true);
      const controlLength = Number(this.#headerView.getBigUint64(40, true));
      return {
        data: this.#data.subarray(0, Math.min(n, this.#data.length)),
        length: n,
        truncated: (msgFlags & MSG_TRUNC) !== 0,
        ...this.#ancillary(Math.min(controlLength, room)),
      };
    }
  }

  /** Walks the control messages the kernel wrote (CMSG_FIRSTHDR / CMSG_NXTHDR). */
  #ancillary(length: number): { credentials: Credentials | null; fds: number[] } {
    const v = this.#controlView;
    let credentials: Credentials | null = null;
    const fds: number[] = [];
    for (let at = 0; at + CMSG_HEADER <= length;) {
      const size = Number(v.getBigUint64(at, true));
      if (size < CMSG_HEADER || at + size > length) break;
      const level = v.getInt32(at + 8, true), type = v.getInt32(at + 12, true);
      if (level === SOL_SOCKET && type === SCM_CREDENTIALS && size >= CMSG_HEADER + 12) {
        credentials = {
          pid: v.getInt32(at + 16, true),
          uid: v.getUint32(at + 20, true),
          gid: v.getUint32(at + 24, true),
        };
      } else if (level === SOL_SOCKET && type === SCM_RIGHTS) {
        for (let i = at + CMSG_HEADER; i + 4 <= at + size; i += 4) fds.push(v.getInt32(i, true));
      }
      at += cmsgAlign(size);
    }
    return { credentials, fds };
  }
}

/**
 * Sends `data` on a connected socket with one descriptor attached
 * (SCM_RIGHTS); returns the bytes sent.
 *
 * @example
 * ```ts
 * sendWithFd(control, new TextEncoder().encode("fd"), upstream);
 * ```
 */
export function sendWithFd(fd: number, data: Uint8Array, passFd: number): number {
  // Off-heap buffers (explicit ArrayBuffers): their addresses go into the msghdr.
  const control = new Uint8Array(new ArrayBuffer(cmsgAlign(CMSG_HEADER + 4)));
  const c = new DataView(control.buffer);
  c.setBigUint64(0, BigInt(CMSG_HEADER + 4), true);
  c.setInt32(8, SOL_SOCKET, true);
  c.setInt32(12, SCM_RIGHTS, true);
  c.setInt32(16, passFd, true);
  const body = new Uint8Array(new ArrayBuffer(data.length));
  body.set(data);
  const address = (b: Uint8Array) =>
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>)));
  const iov = new BigUint64Array(new ArrayBuffer(16));
  iov[0] = address(body);
  iov[1] = BigInt(body.length);
  const header = new Uint8Array(56);
  const h = new DataView(header.buffer);
  h.setBigUint64(16, address(new Uint8Array(iov.buffer)), true);
  h.setBigUint64(24, 1n, true);
  h.setBigUint64(32, address(control), true);
  h.setBigUint64(40, BigInt(control.length), true);
  pinned.current = [control, body, iov];
  for (;;) {
    const n = Number(sockLibc().sendmsg(fd, header, MSG_NOSIGNAL));
    if (n >= 0) {
      pinned.current = null;
      return n;
    }
    const err = errno();
    if (err !== EINTR) {
      pinned.current = null;
      throw fail(err, "sendmsg", fd, passFd);
    }
  }
}
// END socketd block
// ===========================================================================
