/**
 * jk_socketd — rate-limited `/dev/log` sockets for jails.
 *
 * `jk_socketd [-n] [-p PIDFILE] [--log-socket=PATH]
 *             [--socket=PATH [--base=BYTES] [--peak=BYTES] [--interval=SECONDS]]`
 *
 * Creates a datagram socket (mode 0666) at every path named as a section of
 * `jk_socketd.ini` (or the one `--socket`), and relays what jailed programs
 * log there to the host's log socket, each socket held to jailkit's
 * base/peak/interval byte rate (src/ratelimit.ts).
 *
 * Two processes, as in OpenSSH's privilege separation:
 * - the **monitor** stays root outside any jail. It creates the sockets,
 *   connects to the log socket, starts the relay, and afterwards does only
 *   two things: hand the relay a fresh connection to the log socket when it
 *   asks (after the syslog daemon restarted), and on SIGTERM, SIGINT or
 *   SIGHUP stop the relay and remove the sockets and the pidfile. It never
 *   reads a byte a jailed user wrote;
 * - the **relay** inherits the sockets, chroots into an empty root-owned
 *   directory (`PREFIX/usr/lib/jailkit/empty`, created if missing), drops to
 *   `nobody` (setgroups, setresgid, setresuid, verified, no_new_privs) and
 *   relays. If the drop fails, it exits and so does the monitor.
 *
 * Every relayed message is rewritten, so a jailed user cannot forge host log
 * lines: it keeps its priority (facility `kern` becomes `user`), gets the
 * time of receipt and the ident `jk_socketd[PID]`, and is attributed with the
 * jail and the sender's uid and pid as the kernel reports them
 * (SCM_CREDENTIALS). The client's own header time stamp is dropped; its tag
 * stays as text. Control characters become `#ooo` (src/syslog.ts `sanitize`):
 *
 *     <38>Nov 29 09:13:01 jk_socketd[812]: jail=/srv/jail uid=1001 pid=4242: sshd[7]: hello
 *
 * Detaching (without `-n`). Deno cannot fork, so jk_socketd starts a copy of
 * itself (same executable, same Deno flags, read from /proc/self/cmdline)
 * that calls setsid(), and waits until that copy reports "ready" — sockets
 * bound, relay dropped to nobody, pidfile written — or fails. It then exits
 * 0, or with the daemon's exit code and messages. The systemd unit runs
 * `jk_socketd -n` instead (config/jk_socketd.service).
 *
 * Differences from jailkit 2.23, on purpose:
 * - attribution, rewriting and sanitising of relayed messages (above);
 *   datagrams up to 8 KiB are relayed whole (jailkit cut them at 512 bytes),
 *   longer ones are cut and end in "...", and the rate limiter counts their
 *   full length;
 * - it reconnects to the log socket after the syslog daemon restarts;
 * - SIGTERM removes its sockets and pidfile (jailkit left them);
 * - the relay drops to nobody *and its groups*, and exits if it cannot
 *   (jailkit kept root's groups, and stayed root when the drop failed);
 * - it chroots into an empty directory, not into /etc/jailkit;
 * - it starts completely or not at all: an unusable socket path, a
 *   directory that is missing or writable by others, a file that is not a
 *   socket at a socket path, a socket another process still serves, an
 *   unwritable pidfile — each is an error, and anything already created is
 *   removed (jailkit skipped bad sockets, unlinked whatever was at the path,
 *   and ignored pidfile errors);
 * - sockets are bound by name inside their directory's fd with the umask set
 *   to 0111 (mode 0666 from the start, no chmod by path);
 * - the ini file follows src/ini.ts: sections must be absolute, canonical
 *   socket paths, only `base`, `peak`, `interval` are known, bad values are
 *   errors; more than 128 sockets is an error (jailkit silently stopped);
 * - unknown options, `--base`/`--peak`/`--interval` without `--socket`, and
 *   values that are not numbers are usage errors (jailkit ignored them or
 *   read them with atoi); out-of-range values still get jailkit's defaults,
 *   now with a notice;
 * - no fallback to a stream connection to the log socket.
 *
 * Exit codes: see `EXIT`.
 *
 * @module
 */

import { basename, dirname, normalize } from "node:path";
import { errorText, JkError, type OptionSpec, parseCommandLine, runMain } from "./cli.ts";
import { IniError, readIniFile, unknownKeys } from "./ini.ts";
import { checkPath } from "./jailsafety.ts";
import {
  AF_UNIX,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  bindUnix,
  chdir,
  close,
  CLOSE_RANGE_CLOEXEC,
  closeRange,
  connectUnix,
  type Credentials,
  dup3,
  EAGAIN,
  EBADF,
  ECONNREFUSED,
  ECONNRESET,
  ENOENT,
  ENOTCONN,
  EPIPE,
  fchdir,
  fchmod,
  fstat,
  geteuid,
  getgrouplist,
  getpwnam,
  LibcError,
  MessageReceiver,
  mkdirat,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  O_CREAT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  open,
  poll,
  pollAsync,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  POLLOUT,
  readDirFd,
  S_IFDIR,
  S_IFMT,
  S_IFSOCK,
  send,
  sendWithFd,
  setCloseOnExec,
  setsid,
  setSocketOption,
  SO_PASSCRED,
  SOCK_DGRAM,
  SOCK_SEQPACKET,
  socket,
  socketpair,
  SOL_SOCKET,
  statAt,
  umask,
  unlinkat,
  write,
} from "./libc.ts";
import { dropTo, enterJail, PrivilegeError, processArgv, setNoNewPrivs } from "./privileged.ts";
import {
  clampLimits,
  CLI_DEFAULT_INTERVAL,
  DEFAULT_BASE,
  DEFAULT_INTERVAL,
  DEFAULT_PEAK,
  RateLimiter,
  type RateLimits,
} from "./ratelimit.ts";
import { iniPath, INSTALLED, logSocketPath } from "./site.ts";
import {
  FfiTransport,
  formatTimestamp,
  LOG_CRIT,
  LOG_DAEMON,
  LOG_ERR,
  LOG_NOTICE,
  LOG_USER,
  LOG_WARNING,
  sanitize,
  type Severity,
  Syslog,
  type SyslogTransport,
} from "./syslog.ts";
import { socketdRoot } from "./tools.ts";

const TOOL = "jk_socketd";

/** Exit codes. */
export const EXIT = {
  /** Stopped by SIGTERM/SIGINT/SIGHUP; `--help`; the detaching parent once the daemon is ready. */
  ok: 0,
  /**
   * Cannot connect to the log socket; no socket configured; a socket cannot
   * be created; the pidfile cannot be written; not run as root; the relay
   * ended unexpectedly.
   */
  failed: 1,
  /** Usage: unknown option, bad value, `--base` without `--socket`. */
  usage: 2,
  /** jk_socketd.ini missing, unreadable or malformed (jailkit: "could not parse configfile"). */
  config: 11,
  /** The relay could not chroot into its empty directory. */
  chroot: 33,
  /** User nobody is missing, or the relay could not become nobody for good. */
  nobody: 36,
  /** The configuration directory or file, or the empty directory, is not safe. */
  unsafe: 53,
  /** Anything unexpected. */
  internal: 70,
} as const;

/** jailkit's limit on the number of sockets. */
export const MAX_SOCKETS = 128;
/** Datagrams up to this size are relayed whole. */
export const MAX_DATAGRAM = 8192;
/** Most bytes of relayed text after sanitising; longer text is cut and ends in "...". */
export const MAX_RELAYED_TEXT = 8192;

/** First argument of the detached copy and of the relay (internal; never shown in usage). */
const DAEMON_MARK = "--jk-daemon-child", RELAY_MARK = "--jk-relay-child";
/** DENO_DIR and TMPDIR of the relay: under /dev/null, so nothing can be created there. */
const RELAY_NO_CACHE = "/dev/null/jk_socketd-relay";
/** What the detached copy prints on stdout once it runs. */
const READY = "jk_socketd ready";

const USAGE = `jk_socketd version 2.23, usage:

 -n|--nodetach                 do not detach from the terminal, print diagnostics
 -p pidfile|--pidfile=pidfile  write PID to file pidfile (an absolute path)
 -h|--help                     this help screen
 --log-socket=/path            the host's log socket (default ${logSocketPath(INSTALLED)})

 --socket=/path/to/socket      do not read ${iniPath(INSTALLED, TOOL)}, create this socket
 --base=integer                message rate limit (in bytes) per interval (default ${DEFAULT_BASE})
 --peak=integer                message rate limit peak (in bytes) (default ${DEFAULT_PEAK})
                               (--peek supported for backwards compatibility)
 --interval=float              message rate limit interval in seconds (default ${CLI_DEFAULT_INTERVAL})`;

// ---------------------------------------------------------------------------
// Configuration

/** One socket to create, with its clamped limits. */
export interface SocketConfig {
  /** Absolute, canonical path of the socket. */
  path: string;
  /** The jail it serves, for attribution (see `jailOf`). */
  jail: string;
  limits: RateLimits;
  /** The interval in seconds as jailkit prints it. */
  intervalSeconds: number;
}

/** What the command line asks for. */
export interface DaemonOptions {
  nodetach: boolean;
  /** Absolute path of the pidfile. */
  pidfile?: string;
  /** The host's log socket. */
  logSocket: string;
  /** `--socket`: this socket instead of the ini file's. */
  socket?: SocketConfig;
  /** Values replaced by jailkit's defaults, to report once the log is open. */
  notices: string[];
}

const OPTIONS = {
  nodetach: { type: "boolean", short: "n" },
  pidfile: { type: "string", short: "p" },
  help: { type: "boolean", short: "h" },
  socket: { type: "string" },
  base: { type: "string" },
  peak: { type: "string" },
  peek: { type: "string" },
  interval: { type: "string" },
  "log-socket": { type: "string" },
} satisfies OptionSpec;

const INTEGER = /^[+-]?[0-9]{1,15}$/;
const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/**
 * Reads the command line; `null` for `--help`. Throws a `JkError` (exit 2)
 * for anything malformed.
 *
 * @example
 * ```ts
 * parseOptions(["-n", "--socket=/srv/j/dev/log", "--base=100"])?.socket?.limits.base; // 100
 * ```
 */
export function parseOptions(args: string[]): DaemonOptions | null {
  const { values } = parseCommandLine(args, OPTIONS, { positionals: false, usageExit: EXIT.usage });
  if (values.help) return null;
  const text = (name: keyof typeof OPTIONS) => values[name] as string | undefined;
  const usage = (message: string) => new JkError(`${message}; try --help`, EXIT.usage);
  const number = (name: "base" | "peak" | "peek" | "interval", pattern: RegExp) => {
    const value = text(name);
    if (value === undefined) return undefined;
    if (!pattern.test(value)) throw usage(`--${name}: ${JSON.stringify(value)} is not a number`);
    return Number(value);
  };
  const absolute = (name: "pidfile" | "log-socket") => {
    const value = text(name);
    if (value !== undefined && (!value.startsWith("/") || value.includes("\0"))) {
      throw usage(`--${name}: ${JSON.stringify(value)} is not an absolute path`);
    }
    return value;
  };
  const base = number("base", INTEGER);
  const peak = number("peak", INTEGER) ?? number("peek", INTEGER);
  const interval = number("interval", DECIMAL);
  const socketPath = text("socket");
  if (socketPath === undefined && [base, peak, interval].some((v) => v !== undefined)) {
    throw usage("--base, --peak and --interval apply to --socket only");
  }
  const options: DaemonOptions = {
    nodetach: values.nodetach === true,
    pidfile: absolute("pidfile"),
    logSocket: absolute("log-socket") ?? logSocketPath(INSTALLED),
    notices: [],
  };
  if (socketPath !== undefined) {
    const problem = socketPathProblem(socketPath);
    if (problem) throw usage(`--socket: ${JSON.stringify(socketPath)} ${problem}`);
    const clamped = socketConfig(
      socketPath,
      base ?? DEFAULT_BASE,
      peak ?? DEFAULT_PEAK,
      interval ?? CLI_DEFAULT_INTERVAL,
    );
    options.socket = clamped.config;
    options.notices.push(...clamped.notices);
  }
  return options;
}

/**
 * Why a path cannot be a socket path, or `null`: it must be absolute and
 * canonical (no `.`, `..`, `//` or trailing `/`), free of control
 * characters, with a file name that fits `sun_path`.
 *
 * @example
 * ```ts
 * socketPathProblem("/srv/jail/dev/log"); // null
 * socketPathProblem("dev/log"); // "is not an absolute path"
 * ```
 */
export function socketPathProblem(path: string): string | null {
  if (!path.startsWith("/")) return "is not an absolute path";
  // deno-lint-ignore no-control-regex -- refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(path)) return "contains control characters";
  if (path === "/" || normalize(path) !== path || path.endsWith("/")) {
    return "is not a canonical path to a file";
  }
  if (new TextEncoder().encode(basename(path)).length > 107) {
    return "has a file name longer than a socket name can be (107 bytes)";
  }
  return null;
}

/**
 * The jail a socket serves, for attribution: the path before `/dev/log`, or
 * else the socket's directory.
 *
 * @example
 * ```ts
 * jailOf("/srv/jail/dev/log"); // "/srv/jail"
 * jailOf("/var/spool/postfix/dev/log"); // "/var/spool/postfix"
 * jailOf("/run/jails/web.sock"); // "/run/jails"
 * ```
 */
export function jailOf(socketPath: string): string {
  if (socketPath.endsWith("/dev/log")) return socketPath.slice(0, -"/dev/log".length) || "/";
  return dirname(socketPath);
}

/** A socket's config from raw values, with notices for the values jailkit's clamps replaced. */
function socketConfig(
  path: string,
  base: number,
  peak: number,
  interval: number,
): { config: SocketConfig; notices: string[] } {
  const clamped = clampLimits(base, peak, interval);
  return {
    config: {
      path,
      jail: jailOf(path),
      limits: clamped.limits,
      intervalSeconds: clamped.intervalSeconds,
    },
    notices: clamped.notices.map((n) =>
      `socket ${path}: ${n.key} ${n.given} is out of range, using ${n.used}`
    ),
  };
}

/**
 * The sockets of jk_socketd.ini: one per section, named by its path, with
 * `base` (default 511), `peak` (2048) and `interval` (5.0 seconds), clamped
 * as jailkit does. Throws a `JkError`: exit 11 for a missing, unreadable or
 * malformed file, a section that is not a socket path, an unknown key or more
 * than {@link MAX_SOCKETS} sections; exit 1 when no socket is configured.
 *
 * @example
 * ```ts
 * const { sockets } = await socketsFromIni("/etc/jailkit/jk_socketd.ini");
 * ```
 */
export async function socketsFromIni(
  file: string,
): Promise<{ sockets: SocketConfig[]; notices: string[] }> {
  const configError = (message: string) => new JkError(message, EXIT.config);
  try {
    const ini = await readIniFile(file);
    const sections = ini.sections();
    if (sections.length > MAX_SOCKETS) {
      throw configError(`${file}: ${sections.length} sockets configured, at most ${MAX_SOCKETS}`);
    }
    const sockets: SocketConfig[] = [];
    const notices: string[] = [];
    for (const section of sections) {
      const problem = socketPathProblem(section.name);
      if (problem) {
        throw configError(`${file}:${section.line}: section [${section.name}] ${problem}`);
      }
      for (const { key, line } of unknownKeys(section, ["base", "peak", "interval"])) {
        throw configError(
          `${file}:${line}: unknown key "${key}" in [${section.name}] (known: base, peak, interval)`,
        );
      }
      const wide = { min: Number.MIN_SAFE_INTEGER };
      const made = socketConfig(
        section.name,
        section.int("base", DEFAULT_BASE, wide),
        section.int("peak", DEFAULT_PEAK, wide),
        section.float("interval", DEFAULT_INTERVAL),
      );
      sockets.push(made.config);
      notices.push(...made.notices);
    }
    if (sockets.length === 0) {
      throw new JkError(
        `no sockets configured in ${file} or on the command line, nothing to do`,
        EXIT.failed,
      );
    }
    return { sockets, notices };
  } catch (e) {
    if (e instanceof IniError) throw configError(`could not parse configfile: ${e.message}`);
    throw e;
  }
}

/**
 * The configuration directory and the ini file must be root's and writable by
 * nobody else: whoever can write them chooses where a root process creates
 * and removes sockets.
 */
function checkConfigSafety(file: string): void {
  const problems = [
    ...checkPath(dirname(file)),
    ...checkPath(file, { uid: 0, gid: 0 }, false).filter((f) => f.problem !== "missing"),
  ];
  if (problems.length > 0) {
    throw new JkError(
      `abort, ${problems.map((p) => p.message).join("; ")}`,
      EXIT.unsafe,
    );
  }
}

// ---------------------------------------------------------------------------
// What goes upstream

/** Where a relayed message came from. */
export interface Origin {
  jail: string;
  /** The sender's credentials; `null` if the kernel sent none. */
  credentials: Credentials | null;
  /** The datagram was longer than {@link MAX_DATAGRAM} and was cut. */
  truncated: boolean;
}

const lenient = new TextDecoder();
const encoder = new TextEncoder();
const PRIORITY = /^<([0-9]{1,3})>/;
const RFC3164_TIME = /^[A-Z][a-z]{2} [ 0-3][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} /;

/**
 * The datagram sent to the host's log socket for one message a jailed
 * program wrote: `<PRI>TIME jk_socketd[PID]: jail=J uid=U pid=P: TEXT`.
 * - PRI is the client's `<n>` if it is a valid priority (0-191), with facility
 *   kern (0) turned into user: no process may log as the kernel. Without one,
 *   user.notice, and the text is kept whole.
 * - TIME is the time of receipt; a leading RFC 3164 time stamp of the client
 *   is dropped. Trailing NULs and line ends are dropped.
 * - TEXT is sanitised (control characters as `#ooo`), so one datagram stays
 *   one log line; cut at {@link MAX_RELAYED_TEXT} bytes with "...".
 *
 * @example
 * ```ts
 * relayedDatagram(new TextEncoder().encode("<38>Nov 29 09:13:01 sshd[7]: hi\n"),
 *   { jail: "/srv/j", credentials: { pid: 42, uid: 1001, gid: 1001 }, truncated: false },
 *   812, new Date(2026, 10, 29, 9, 13, 2));
 * // "<38>Nov 29 09:13:02 jk_socketd[812]: jail=/srv/j uid=1001 pid=42: sshd[7]: hi"
 * ```
 */
export function relayedDatagram(
  raw: Uint8Array,
  origin: Origin,
  relayPid: number,
  now: Date,
): Uint8Array {
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0 || raw[end - 1] === 0x0a || raw[end - 1] === 0x0d)) end--;
  let text = lenient.decode(raw.subarray(0, end));
  let facility = LOG_USER, severity = LOG_NOTICE as number;
  const priority = PRIORITY.exec(text);
  if (priority && Number(priority[1]) <= 191) {
    const value = Number(priority[1]);
    facility = (value >> 3) || LOG_USER;
    severity = value & 7;
    text = text.slice(priority[0].length).replace(RFC3164_TIME, "");
  }
  const bodyText = sanitize(text) + (origin.truncated ? "..." : "");
  const who = origin.credentials
    ? `uid=${origin.credentials.uid} pid=${origin.credentials.pid}`
    : "uid=? pid=?";
  const headText = `<${facility * 8 + severity}>${timestamp(now)} ${TOOL}[${relayPid}]: ` +
    `jail=${sanitize(origin.jail)} ${who}: `;
  // Fast path: a UTF-16 unit is at most 3 UTF-8 bytes, so this body fits.
  if (bodyText.length * 3 <= MAX_RELAYED_TEXT) return encoder.encode(headText + bodyText);
  let body: Uint8Array = encoder.encode(bodyText);
  if (body.length > MAX_RELAYED_TEXT) {
    let cut = MAX_RELAYED_TEXT - 3;
    while (cut > 0 && (body[cut] & 0xc0) === 0x80) cut--; // never split a UTF-8 sequence
    body = concat(body.subarray(0, cut), encoder.encode("..."));
  }
  return concat(encoder.encode(headText), body);
}

/** `formatTimestamp`, computed once per second: the relay stamps every message. */
let stampSecond = NaN, stamp = "";
function timestamp(now: Date): string {
  const second = Math.floor(now.getTime() / 1000);
  if (second !== stampSecond) {
    stamp = formatTimestamp(now);
    stampSecond = second;
  }
  return stamp;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

// ---------------------------------------------------------------------------
// The relay: chrooted, nobody, reads the jails' sockets

/** What the monitor hands the relay on its stdin. */
interface RelaySpec {
  sockets: { path: string; jail: string; fd: number; limits: RateLimits }[];
  /** Connected to the log socket. */
  upstreamFd: number;
  /** SOCK_SEQPACKET to the monitor: reconnect requests, and its end means stop. */
  controlFd: number;
  /** The empty directory to chroot into. */
  root: string;
  /** Who to become. */
  user: { uid: number; gid: number; groups: number[] };
}

/** Messages on the control channel. */
const CONTROL = {
  ready: "ready",
  reconnect: "reconnect",
  connected: "connected",
  failed: "failed",
};

/** Monotonic time in microseconds. */
function nowUs(): number {
  return Math.round(performance.now() * 1000);
}

/** The errors of a send that mean the log daemon went away (restart, rotation). */
const DISCONNECTED = new Set([ECONNREFUSED, ENOTCONN, EPIPE, ECONNRESET, EBADF]);
/** How long a send may wait for room in the log daemon's queue. */
const SEND_WAIT_MS = 1000;
/** How long to wait before asking for a new connection again after one failed. */
const RECONNECT_BACKOFF_MS = 1000;

/**
 * The relay's connection to the log socket. When the daemon is gone, it asks
 * the monitor (which is not chrooted) for a new connection, at most once per
 * second; messages that cannot be delivered are dropped and counted.
 */
class Upstream {
  #fd: number;
  #retryAt = 0;
  readonly #control: number;
  readonly #receiver = new MessageReceiver({ capacity: 64, maxFds: 1 });

  constructor(fd: number, control: number) {
    this.#fd = fd;
    this.#control = control;
  }

  /** Sends one datagram; `false` when it had to be dropped. Never throws. */
  send(datagram: Uint8Array): boolean {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        send(this.#fd, datagram, MSG_DONTWAIT | MSG_NOSIGNAL);
        return true;
      } catch (e) {
        const errno = e instanceof LibcError ? e.errno : -1;
        if (errno === EAGAIN) {
          // The daemon's queue is full: wait for room, as a blocking syslog(3) would.
          const [ready] = poll([{ fd: this.#fd, events: POLLOUT }], SEND_WAIT_MS);
          if (!(ready & POLLOUT)) return false;
        } else if (!DISCONNECTED.has(errno) || !this.#reconnect()) {
          return false;
        }
      }
    }
    return false;
  }

  #reconnect(): boolean {
    if (Date.now() < this.#retryAt) return false;
    this.#retryAt = Date.now() + RECONNECT_BACKOFF_MS;
    try {
      send(this.#control, encoder.encode(CONTROL.reconnect), MSG_NOSIGNAL);
      const [ready] = poll([{ fd: this.#control, events: POLLIN }], 2 * SEND_WAIT_MS);
      if (!(ready & POLLIN)) return false;
      const reply = this.#receiver.receive(this.#control, MSG_DONTWAIT);
      if (!reply) return false;
      if (reply.fds.length !== 1) {
        reply.fds.forEach(closeQuietly);
        return false;
      }
      closeQuietly(this.#fd);
      this.#fd = reply.fds[0];
      this.#retryAt = 0;
      return true;
    } catch {
      return false;
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    close(fd);
  } catch {
    // gone either way
  }
}

/** One socket as the relay serves it. */
interface Link {
  path: string;
  jail: string;
  fd: number;
  limiter: RateLimiter;
  /** Monotonic µs until which the socket is not read; `null` while reading. */
  pausedUntil: number | null;
}

/** Datagrams read from one socket before the others get their turn. */
const DRAIN_BATCH = 256;

/** The relay loop: poll, read, rewrite, forward, account. */
class Relay {
  readonly #links: Link[];
  readonly #upstream: Upstream;
  readonly #control: number;
  readonly #receiver = new MessageReceiver({ capacity: MAX_DATAGRAM, credentials: true });
  readonly #log: Syslog<void>;
  readonly #pid = Deno.pid;
  #dropped = 0;

  constructor(spec: RelaySpec) {
    const start = nowUs();
    this.#links = spec.sockets.map((s) => ({
      path: s.path,
      jail: s.jail,
      fd: s.fd,
      limiter: new RateLimiter(s.path, s.limits, start),
      pausedUntil: null,
    }));
    this.#upstream = new Upstream(spec.upstreamFd, spec.controlFd);
    this.#control = spec.controlFd;
    const upstream = this.#upstream;
    const transport: SyslogTransport<void> = {
      send: (datagram) => void upstream.send(datagram),
      close: () => {},
    };
    this.#log = new Syslog(TOOL, LOG_DAEMON, transport);
  }

  /** Runs until the monitor goes away; returns the exit code. */
  run(): number {
    send(this.#control, encoder.encode(CONTROL.ready), MSG_NOSIGNAL);
    for (;;) {
      const now = nowUs();
      let wakeAt = Infinity;
      for (const link of this.#links) {
        if (link.pausedUntil === null) continue;
        if (now >= link.pausedUntil) {
          link.limiter.resume(now);
          link.pausedUntil = null;
        } else {
          wakeAt = Math.min(wakeAt, link.pausedUntil);
        }
      }
      const active = this.#links.filter((l) => l.pausedUntil === null);
      const timeout = wakeAt === Infinity ? -1 : Math.max(1, Math.ceil((wakeAt - now) / 1000));
      const ready = poll([
        { fd: this.#control, events: POLLIN },
        ...active.map((l) => ({ fd: l.fd, events: POLLIN })),
      ], timeout);
      if (ready[0] & (POLLHUP | POLLERR | POLLNVAL)) return EXIT.ok; // the monitor is gone
      if (ready[0] & POLLIN) this.#discardControl();
      active.forEach((link, i) => {
        const events = ready[i + 1];
        if (events & POLLIN) this.#drain(link);
        else if (events & (POLLERR | POLLNVAL)) {
          throw new JkError(`socket ${link.path} failed (poll events 0x${events.toString(16)})`);
        }
      });
    }
  }

  /** Reads and relays up to DRAIN_BATCH datagrams, or until the limiter pauses the socket. */
  #drain(link: Link): void {
    for (let i = 0; i < DRAIN_BATCH; i++) {
      const message = this.#receiver.receive(link.fd, MSG_DONTWAIT);
      if (!message) return;
      if (message.length === 0) continue;
      const datagram = relayedDatagram(
        message.data,
        { jail: link.jail, credentials: message.credentials, truncated: message.truncated },
        this.#pid,
        new Date(),
      );
      this.#forward(datagram);
      // As jailkit: forward first, then count; the message that crosses a limit still goes.
      const now = nowUs();
      const throttle = link.limiter.account(message.length, now);
      if (throttle) {
        this.#log.log(LOG_WARNING, throttle.message);
        link.pausedUntil = now + throttle.pauseUs;
        return;
      }
    }
  }

  #forward(datagram: Uint8Array): void {
    if (!this.#upstream.send(datagram)) {
      this.#dropped++;
      return;
    }
    if (this.#dropped > 0) {
      const count = this.#dropped;
      this.#dropped = 0;
      this.#log.log(
        LOG_CRIT,
        `failed to write ${count} log message(s): the log socket was unavailable`,
      );
    }
  }

  /** Nothing is expected on the control channel between requests: drop it (and any fds). */
  #discardControl(): void {
    const junk = new MessageReceiver({ capacity: 64, maxFds: 4 });
    junk.receive(this.#control, MSG_DONTWAIT)?.fds.forEach(closeQuietly);
  }
}

/** Reads and checks the spec the monitor wrote on stdin. */
async function readRelaySpec(): Promise<RelaySpec> {
  const text = await new Response(Deno.stdin.readable).text();
  let spec: RelaySpec;
  try {
    spec = JSON.parse(text);
  } catch {
    throw new JkError(`${RELAY_MARK}: expects the relay description on stdin`, EXIT.usage);
  }
  const fds = [spec.upstreamFd, spec.controlFd, ...(spec.sockets ?? []).map((s) => s.fd)];
  if (!fds.every((fd) => Number.isInteger(fd) && fd > 2) || typeof spec.root !== "string") {
    throw new JkError(`${RELAY_MARK}: malformed relay description`, EXIT.usage);
  }
  for (const fd of fds) {
    if ((fstat(fd).mode & S_IFMT) !== S_IFSOCK) {
      throw new JkError(`${RELAY_MARK}: fd ${fd} is not a socket`, EXIT.usage);
    }
    setCloseOnExec(fd, true);
  }
  return spec;
}

/** The relay process: chroot, drop to nobody, relay until the monitor is gone. */
async function relayMain(): Promise<number> {
  const spec = await readRelaySpec();
  // Load the time zone while /etc/localtime is still reachable: glibc and V8
  // keep it, and every relayed line carries local time.
  formatTimestamp(new Date());
  try {
    enterJail(spec.root);
  } catch (e) {
    const why = e instanceof PrivilegeError ? e.message : errorText(e);
    throw new JkError(`failed to chroot to ${spec.root}: ${why}`, EXIT.chroot);
  }
  try {
    dropTo(spec.user);
    setNoNewPrivs();
  } catch (e) {
    const why = e instanceof PrivilegeError ? e.message : errorText(e);
    throw new JkError(
      `failed to change to user nobody (uid=${spec.user.uid}, gid=${spec.user.gid}): ${why}`,
      EXIT.nobody,
    );
  }
  return new Relay(spec).run();
}

// ---------------------------------------------------------------------------
// The monitor: root, outside any jail

/** Messages of the daemon: syslog always, stdout too with `-n`. */
class Reporter {
  constructor(readonly log: Syslog<void>, readonly echo: boolean) {}

  say(severity: Severity, message: string): void {
    this.log.log(severity, message);
    if (this.echo) console.log(message);
  }
}

/** A socket the monitor created, and how to find it again to remove it. */
interface Created {
  config: SocketConfig;
  /** The listening socket (closed in the monitor once the relay has it). */
  fd: number;
  /** O_PATH fd of the socket's directory; the socket is `name` in it. */
  dirFd: number;
  name: string;
  dev: bigint;
  ino: bigint;
}

/** A file the monitor created at a path: removed only if it is still that file. */
interface Placed {
  path: string;
  dev: bigint;
  ino: bigint;
}

/** Everything the monitor has made so far, so that any failure can undo it. */
class Resources {
  readonly sockets: Created[] = [];
  pidfile: Placed | null = null;
  relay: Deno.ChildProcess | null = null;
  upstreamFd: number | null = null;
  controlFd: number | null = null;

  /** Removes the sockets and the pidfile; closes what is open. Never throws. */
  release(report?: Reporter): void {
    for (const s of this.sockets.splice(0)) {
      try {
        const now = statAt(s.dirFd, s.name, AT_SYMLINK_NOFOLLOW);
        if (now && now.dev === s.dev && now.ino === s.ino) unlinkat(s.dirFd, s.name, 0);
        else report?.say(LOG_NOTICE, `socket ${s.config.path} was replaced; left in place`);
      } catch (e) {
        report?.say(LOG_ERR, `failed to remove socket ${s.config.path}: ${errorText(e)}`);
      }
      if (s.fd >= 0) closeQuietly(s.fd);
      closeQuietly(s.dirFd);
    }
    if (this.pidfile) {
      const { path, dev, ino } = this.pidfile;
      this.pidfile = null;
      try {
        const now = statAt(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW);
        if (now && now.dev === dev && now.ino === ino) unlinkat(AT_FDCWD, path, 0);
      } catch (e) {
        report?.say(LOG_ERR, `failed to remove pidfile ${path}: ${errorText(e)}`);
      }
    }
    for (const fd of [this.upstreamFd, this.controlFd]) if (fd !== null) closeQuietly(fd);
    this.upstreamFd = this.controlFd = null;
  }
}

/**
 * The relay's user: nobody, with nobody's own groups (jailkit kept root's).
 * Resolved through the host's user database, before any chroot.
 */
function nobody(): { uid: number; gid: number; groups: number[] } {
  const pw = getpwnam("nobody");
  if (!pw) {
    throw new JkError(
      "cannot get UID and GID for user nobody; refusing to relay as root",
      EXIT.nobody,
    );
  }
  return {
    uid: pw.uid,
    gid: pw.gid,
    groups: [...new Set([pw.gid, ...getgrouplist(pw.name, pw.gid)])],
  };
}

/**
 * The relay's root: an empty directory, owned by root, writable by no one
 * else, below root-owned directories nobody else can write (checked by fd and
 * statx, without following links). Created with mode 0755 when missing.
 */
function prepareEmptyRoot(path: string): void {
  const unsafe = (why: string) => new JkError(`abort, ${path} ${why}`, EXIT.unsafe);
  let dir = dirname(path);
  for (;;) {
    const st = statAt(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW);
    if (!st || (st.mode & S_IFMT) !== S_IFDIR || st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw unsafe(`cannot be used: ${dir} is not a root-owned directory only root can write`);
    }
    if (dir === "/") break;
    dir = dirname(dir);
  }
  const parent = open(dirname(path), O_PATH | O_DIRECTORY | O_NOFOLLOW);
  try {
    if (!statAt(parent, basename(path), AT_SYMLINK_NOFOLLOW)) {
      const old = umask(0o022);
      try {
        mkdirat(parent, basename(path), 0o755);
      } finally {
        umask(old);
      }
    }
  } finally {
    close(parent);
  }
  let fd: number;
  try {
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (e) {
    throw unsafe(`cannot be opened as a directory: ${errorText(e)}`);
  }
  try {
    const st = fstat(fd);
    if (st.uid !== 0 || (st.mode & 0o7022) !== 0) {
      throw unsafe("must be owned by root, with no write access for group or others");
    }
    if (readDirFd(fd).length > 0) throw unsafe("must be empty: the relay chroots into it");
  } finally {
    close(fd);
  }
}

/** Connects a datagram socket to the host's log socket (exit 1 if it cannot). */
function connectUpstream(path: string): number {
  const fd = socket(AF_UNIX, SOCK_DGRAM);
  try {
    connectUnix(fd, path);
    return fd;
  } catch (e) {
    close(fd);
    throw new JkError(`version 2.23, while connecting to ${path}: ${errorText(e)}`, EXIT.failed);
  }
}

/** Whether a process is serving the socket `name` in the current directory. */
function socketIsServed(name: string): boolean {
  const probe = socket(AF_UNIX, SOCK_DGRAM);
  try {
    connectUnix(probe, name);
    return true;
  } catch (e) {
    if (e instanceof LibcError && (e.errno === ECONNREFUSED || e.errno === ENOENT)) return false;
    throw e;
  } finally {
    close(probe);
  }
}

/**
 * Creates one listening socket, mode 0666, root's, with SO_PASSCRED. The
 * directory is opened once and everything after happens relative to that fd
 * (fchdir, bind by name), so a path swapped meanwhile cannot redirect us. A
 * stale socket is replaced; anything else at the path is an error.
 */
function createSocket(config: SocketConfig, cwd: number, into: Resources): void {
  const { path } = config;
  const dir = dirname(path), name = basename(path);
  const failed = (why: string) => new JkError(`while opening ${path}: ${why}`, EXIT.failed);
  let dirFd: number;
  try {
    dirFd = open(dir, O_PATH | O_DIRECTORY);
  } catch (e) {
    throw failed(`directory ${dir}: ${errorText(e)}`);
  }
  let fd = -1;
  try {
    const st = fstat(dirFd);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
      throw failed(
        `directory ${dir} must be owned by root and not writable by group or others ` +
          `(whoever can write it can replace the socket)`,
      );
    }
    fchdir(dirFd);
    try {
      const existing = statAt(dirFd, name, AT_SYMLINK_NOFOLLOW);
      if (existing) {
        if ((existing.mode & S_IFMT) !== S_IFSOCK) throw failed("it exists and is not a socket");
        if (socketIsServed(name)) throw failed("another process is serving this socket");
        unlinkat(dirFd, name, 0);
      }
      fd = socket(AF_UNIX, SOCK_DGRAM);
      const old = umask(0o111); // the socket file is 0666 from the start: syslog(3) clients write
      try {
        bindUnix(fd, name);
      } finally {
        umask(old);
      }
    } finally {
      fchdir(cwd);
    }
    const made = statAt(dirFd, name, AT_SYMLINK_NOFOLLOW);
    if (!made || (made.mode & S_IFMT) !== S_IFSOCK) throw failed("the socket vanished");
    into.sockets.push({ config, fd, dirFd, name, dev: made.dev, ino: made.ino });
    setSocketOption(fd, SOL_SOCKET, SO_PASSCRED, 1);
  } catch (e) {
    if (!into.sockets.some((s) => s.dirFd === dirFd)) {
      if (fd >= 0) closeQuietly(fd);
      closeQuietly(dirFd);
    }
    if (e instanceof JkError && !(e instanceof LibcError)) throw e;
    throw failed(errorText(e));
  }
}

/** Writes the pid, decimal without newline as jailkit does, to a new or truncated file. */
function writePidfile(path: string, pid: number, into: Resources): void {
  let fd: number;
  try {
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o644);
  } catch (e) {
    throw new JkError(`failed to write pid to ${path}: ${errorText(e)}`, EXIT.failed);
  }
  try {
    const st = fstat(fd);
    into.pidfile = { path, dev: st.dev, ino: st.ino };
    fchmod(fd, 0o644);
    write(fd, encoder.encode(String(pid)));
  } catch (e) {
    throw new JkError(`failed to write pid to ${path}: ${errorText(e)}`, EXIT.failed);
  } finally {
    close(fd);
  }
}

/** How to start this program again: the executable and the arguments before ours. */
function selfCommand(): { program: string; prefix: string[] } {
  const argv = processArgv().map((a) => lenient.decode(a));
  const first = argv.length - Deno.args.length;
  if (first < 1 || argv.slice(first).some((a, i) => a !== Deno.args[i])) {
    throw new JkError("cannot tell from /proc/self/cmdline how jk_socketd was started");
  }
  return { program: Deno.execPath(), prefix: argv.slice(1, first) };
}

/** Copies each line of a child's output to `say` as it comes. */
async function forwardLines(stream: ReadableStream<Uint8Array>, say: (line: string) => void) {
  let pending = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop()!;
    lines.filter((l) => l !== "").forEach(say);
  }
  if (pending) say(pending);
}

/** Resolves with the name of the first of SIGTERM, SIGINT, SIGHUP to arrive. */
function stopSignals(): Promise<Deno.Signal> {
  return new Promise((resolve) => {
    for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
  });
}

/**
 * Starts the relay with the sockets, the log connection and its end of the
 * control channel; returns once it has dropped to nobody. The monitor keeps
 * none of the relay's fds.
 */
async function startRelay(
  resources: Resources,
  user: { uid: number; gid: number; groups: number[] },
  report: Reporter,
  stopped: Promise<Deno.Signal>,
): Promise<Deno.ChildProcess | null> {
  const self = selfCommand();
  const [mine, theirs] = socketpair(SOCK_SEQPACKET);
  resources.controlFd = mine;
  const passed = [...resources.sockets.map((s) => s.fd), resources.upstreamFd!, theirs];
  const spec: RelaySpec = {
    sockets: resources.sockets.map((s) => ({
      path: s.config.path,
      jail: s.config.jail,
      fd: s.fd,
      limits: s.config.limits,
    })),
    upstreamFd: resources.upstreamFd!,
    controlFd: theirs,
    root: socketdRoot(INSTALLED),
    user,
  };
  // Exactly these fds cross into the relay: everything else is close-on-exec.
  passed.forEach((fd) => setCloseOnExec(fd, false));
  let relay: Deno.ChildProcess;
  try {
    relay = new Deno.Command(self.program, {
      args: [...self.prefix, RELAY_MARK],
      // The runtime opens its module and code caches (DENO_DIR, or a compiled
      // binary's $TMPDIR code cache) read-write, as root, before our code runs,
      // and the relay would keep those handles and shared maps after dropping to
      // nobody: a compromised relay could poison code that root runs later. A
      // directory that cannot exist makes the runtime keep its caches in memory.
      env: { DENO_DIR: RELAY_NO_CACHE, TMPDIR: RELAY_NO_CACHE },
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } finally {
    passed.forEach((fd) => setCloseOnExec(fd, true));
  }
  resources.relay = relay;
  // The monitor never reads the jails' sockets; the relay holds them now.
  for (const s of resources.sockets) {
    closeQuietly(s.fd);
    s.fd = -1;
  }
  closeQuietly(resources.upstreamFd!);
  resources.upstreamFd = null;
  closeQuietly(theirs);
  forwardLines(relay.stderr, (line) => report.say(LOG_ERR, `relay: ${line}`)).catch(() => {});
  const writer = relay.stdin.getWriter();
  await writer.write(encoder.encode(JSON.stringify(spec)));
  await writer.close();

  // Ready, or why not.
  let done = false;
  const exited = relay.status.then((s) => ({ exited: s }));
  const stop = stopped.then((signal) => ({ signal }));
  const ready = (async () => {
    const receiver = new MessageReceiver({ capacity: 64 });
    while (!done) {
      const [events] = await pollAsync([{ fd: mine, events: POLLIN }], 200);
      if (done) break;
      if (events & POLLIN) {
        const m = receiver.receive(mine, MSG_DONTWAIT);
        if (m && lenient.decode(m.data) === CONTROL.ready) return { ready: true };
      }
      if (events & (POLLHUP | POLLERR)) await new Promise((r) => setTimeout(r, 50));
    }
    return { ready: false };
  })();
  const first = await Promise.race([exited, stop, ready]);
  done = true;
  if ("ready" in first && first.ready) return relay;
  if ("signal" in first) return null;
  const status = "exited" in first ? first.exited : await relay.status;
  throw new JkError(
    `the relay failed to start (exit code ${status.code})`,
    status.code > 0 && status.code !== EXIT.internal ? status.code : EXIT.failed,
  );
}

/**
 * Serves the relay's requests for a new log connection until `done()` says
 * stop. Each request gets a freshly connected socket (SCM_RIGHTS) or "failed".
 */
async function serveReconnects(control: number, logSocket: string, done: () => boolean) {
  const receiver = new MessageReceiver({ capacity: 64 });
  while (!done()) {
    const [events] = await pollAsync([{ fd: control, events: POLLIN }], 250);
    if (done() || events & (POLLHUP | POLLERR | POLLNVAL)) return;
    if (!(events & POLLIN)) continue;
    const request = receiver.receive(control, MSG_DONTWAIT);
    if (!request || lenient.decode(request.data) !== CONTROL.reconnect) continue;
    let fd: number | null = null;
    try {
      fd = socket(AF_UNIX, SOCK_DGRAM);
      connectUnix(fd, logSocket);
      sendWithFd(control, encoder.encode(CONTROL.connected), fd);
    } catch {
      try {
        send(control, encoder.encode(CONTROL.failed), MSG_NOSIGNAL);
      } catch {
        return; // the relay is gone
      }
    } finally {
      if (fd !== null) closeQuietly(fd);
    }
  }
}

/**
 * Puts /dev/null on fds 0-2 and on every other fd open on the same files (the
 * runtime keeps duplicates of its stdio), so the detaching parent's pipes
 * close and it exits, and nothing the daemon prints later can fail on them.
 */
function detachStdio(): void {
  const stdio = [0, 1, 2].map((fd) => fstat(fd));
  const fdDir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
  let fds: number[];
  try {
    fds = readDirFd(fdDir).map((e) => Number(e.name)).filter((fd) => fd !== fdDir);
  } finally {
    close(fdDir);
  }
  const devNull = open("/dev/null", O_RDWR);
  for (const fd of fds) {
    if (fd === devNull) continue;
    let st;
    try {
      st = fstat(fd);
    } catch {
      continue; // closed meanwhile
    }
    if (stdio.some((s) => s.dev === st.dev && s.ino === st.ino)) dup3(devNull, fd, fd > 2);
  }
  close(devNull);
}

/**
 * The daemon: everything up to a running relay, then waiting for a stop
 * signal or the relay's end. `detached`: started by `detach()`, which waits
 * for the READY line on stdout.
 */
async function runDaemon(options: DaemonOptions, detached: boolean): Promise<number> {
  if (geteuid() !== 0) {
    throw new JkError(
      "you are not root: jk_socketd binds sockets in jails, chroots and changes to nobody",
      EXIT.failed,
    );
  }
  // No fd we inherited may reach the relay.
  closeRange(3, 0xffff_ffff, CLOSE_RANGE_CLOEXEC);
  if (detached) setsid();
  const log = new Syslog(TOOL, LOG_DAEMON, new FfiTransport(options.logSocket));
  const report = new Reporter(log, options.nodetach && !detached);
  const stopped = stopSignals();
  const resources = new Resources();
  const cwd = open(".", O_PATH | O_DIRECTORY);
  try {
    let sockets: SocketConfig[];
    const notices = [...options.notices];
    if (options.socket) {
      sockets = [options.socket];
    } else {
      const file = iniPath(INSTALLED, TOOL);
      checkConfigSafety(file);
      const fromIni = await socketsFromIni(file);
      sockets = fromIni.sockets;
      notices.push(...fromIni.notices);
    }
    notices.forEach((n) => report.say(LOG_NOTICE, n));
    const user = nobody();
    prepareEmptyRoot(socketdRoot(INSTALLED));
    resources.upstreamFd = connectUpstream(options.logSocket);
    if (report.echo) console.log(`opened ${options.logSocket}`);
    for (const config of sockets) {
      createSocket(config, cwd, resources);
      const { base, peak } = config.limits;
      report.say(
        LOG_NOTICE,
        `version 2.23, listening on socket ${config.path} with rates ` +
          `[${base}:${peak}]/${config.intervalSeconds.toFixed(6)}`,
      );
    }
    const relay = await startRelay(resources, user, report, stopped);
    if (!relay) return stop(resources, report, "before the relay was ready");
    chdir("/");
    if (options.pidfile) writePidfile(options.pidfile, Deno.pid, resources);
    report.say(
      LOG_NOTICE,
      `version 2.23, relaying as nobody (${user.uid}:${user.gid}) in ${socketdRoot(INSTALLED)}`,
    );
    if (detached) {
      console.log(READY);
      detachStdio();
    }
    let finished = false;
    serveReconnects(resources.controlFd!, options.logSocket, () => finished).catch(() => {});
    const why = await Promise.race([
      stopped.then((signal) => ({ signal })),
      relay.status.then((status) => ({ status })),
    ]);
    finished = true;
    if ("signal" in why) return stop(resources, report, `on ${why.signal}`);
    report.say(LOG_ERR, `the relay ended unexpectedly (exit code ${why.status.code}), exiting`);
    resources.relay = null;
    resources.release(report);
    return EXIT.failed;
  } catch (e) {
    const message = e instanceof JkError ? e.message : `internal error: ${errorText(e)}`;
    log.log(LOG_CRIT, message);
    await stopRelay(resources);
    resources.release(report);
    throw e instanceof JkError ? e : new JkError(message, EXIT.internal);
  } finally {
    closeQuietly(cwd);
  }
}

/** Ends the relay (SIGTERM, then SIGKILL after 5 s). */
async function stopRelay(resources: Resources): Promise<void> {
  const relay = resources.relay;
  resources.relay = null;
  if (!relay) return;
  try {
    relay.kill("SIGTERM");
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      relay.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, 5000);
  await relay.status;
  clearTimeout(timer);
}

/** A requested stop: relay ended, sockets and pidfile removed. */
async function stop(resources: Resources, report: Reporter, when: string): Promise<number> {
  await stopRelay(resources);
  resources.release(report);
  report.say(LOG_NOTICE, `version 2.23, stopped ${when}, sockets removed`);
  return EXIT.ok;
}

/**
 * Without `-n`: starts the daemon as a detached copy of this program and
 * waits until it is ready (exit 0) or has failed (its exit code and messages).
 */
async function detach(args: string[]): Promise<number> {
  const self = selfCommand();
  const child = new Deno.Command(self.program, {
    args: [...self.prefix, DAEMON_MARK, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const [out, err] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if (err) await Deno.stderr.write(encoder.encode(err));
  if (out.split("\n").includes(READY)) {
    child.unref();
    return EXIT.ok;
  }
  const { code } = await child.status;
  return code === 0 ? EXIT.failed : code;
}

/** Entry point: the relay, the detached daemon, or the command line. */
export async function main(args: string[]): Promise<number> {
  if (args[0] === RELAY_MARK) return await relayMain();
  const detached = args[0] === DAEMON_MARK;
  const options = parseOptions(detached ? args.slice(1) : args);
  if (!options) {
    console.log(USAGE);
    return EXIT.ok;
  }
  if (options.nodetach || detached) return await runDaemon(options, detached);
  return await detach(args);
}

if (import.meta.main) await runMain(TOOL, () => main(Deno.args));
