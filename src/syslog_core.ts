/**
 * The part of the syslog client that needs no FFI: RFC 3164 formatting, the
 * `Syslog` log, and `DenoTransport` (an unbound `Deno.listenDatagram`
 * socket). `src/syslog.ts` re-exports all of it beside the FFI transport.
 *
 * Why a module of its own: jk_lsh runs without FFI on every login and imports
 * this one, so it never loads `src/libc.ts` (75 KB, about 4 ms of module
 * loading and compiling, since the tools run without a code cache).
 *
 * See `src/syslog.ts` for the format and the rules every transport follows.
 *
 * @module
 */

/** Facility codes (RFC 3164 numbers; glibc's `LOG_AUTH` is `LOG_AUTH << 3`). */
export const LOG_USER = 1, LOG_DAEMON = 3, LOG_AUTH = 4, LOG_AUTHPRIV = 10;

/** Severities (RFC 3164 / syslog(3) levels). */
export const LOG_EMERG = 0, LOG_ALERT = 1, LOG_CRIT = 2, LOG_ERR = 3;
/** Severities (RFC 3164 / syslog(3) levels). */
export const LOG_WARNING = 4, LOG_NOTICE = 5, LOG_INFO = 6, LOG_DEBUG = 7;

/** A severity level, `LOG_EMERG` (0) to `LOG_DEBUG` (7). */
export type Severity = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** Largest datagram sent; longer messages are cut and end in "...". */
export const MAX_DATAGRAM = 2048;

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/**
 * The RFC 3164 timestamp of `date` in local time, as glibc's `%h %e %T`.
 *
 * @example
 * ```ts
 * formatTimestamp(new Date(2026, 10, 5, 9, 3, 7)); // "Nov  5 09:03:07"
 * ```
 */
export function formatTimestamp(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${MONTHS[date.getMonth()]} ${String(date.getDate()).padStart(2, " ")} ` +
    `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

/** C0 controls, DEL, C1 controls and the Unicode line and paragraph separators. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

/**
 * Escapes control characters as `#` and the code point in (at least three)
 * octal digits, rsyslog's own convention (`#012` for a newline), so that no
 * text a user controls can end the line and start a forged entry.
 *
 * @example
 * ```ts
 * sanitize("a\nb"); // "a#012b"
 * ```
 */
export function sanitize(text: string): string {
  return text.replace(CONTROL, (c) => "#" + c.codePointAt(0)!.toString(8).padStart(3, "0"));
}

const encoder = new TextEncoder();

/** What one datagram carries. */
export interface Entry {
  facility: number;
  severity: Severity;
  ident: string;
  pid: number;
  message: string;
  date: Date;
}

/**
 * The datagram for one entry: sanitised, and cut at a UTF-8 character
 * boundary so that it fits `MAX_DATAGRAM` bytes.
 *
 * @example
 * ```ts
 * formatDatagram({ facility: LOG_AUTH, severity: LOG_INFO, ident: "jk_lsh", pid: 42,
 *   message: "started", date: new Date(2026, 10, 29, 9, 13, 1) });
 * // bytes of "<38>Nov 29 09:13:01 jk_lsh[42]: started"
 * ```
 */
export function formatDatagram(entry: Entry): Uint8Array {
  const priority = entry.facility * 8 + entry.severity;
  const head = encoder.encode(
    `<${priority}>${formatTimestamp(entry.date)} ${sanitize(entry.ident)}[${entry.pid}]: `,
  );
  const body = encoder.encode(sanitize(entry.message));
  if (head.length + body.length <= MAX_DATAGRAM) return concat(head, body);
  const ellipsis = encoder.encode("...");
  let cut = Math.max(0, MAX_DATAGRAM - head.length - ellipsis.length);
  while (cut > 0 && (body[cut] & 0xc0) === 0x80) cut--; // never split a UTF-8 sequence
  return concat(head, body.subarray(0, cut), ellipsis);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Carries datagrams to the log daemon. `R` is `void` for a synchronous
 * transport and `Promise<void>` for an asynchronous one. Neither method ever
 * throws or rejects.
 */
export interface SyslogTransport<R extends void | Promise<void>> {
  /** Sends one datagram, or drops it silently. */
  send(datagram: Uint8Array): R;
  /** Releases the socket; a later `send` opens a new one. */
  close(): R;
}

/**
 * Sends through Deno's datagram API from an unbound socket, created on first
 * use. Needs `--unstable-net`, `--allow-net=unix:PATH` and
 * `--allow-write=PATH`; without them every message is dropped. Sends go out
 * in order; one that the daemon does not accept within `timeoutMs` (a full
 * receive queue) is dropped and the socket replaced.
 *
 * @example
 * ```ts
 * const log = openLog("jk_socketd", LOG_DAEMON, new DenoTransport("/run/jailkit/log"));
 * await log.log(LOG_NOTICE, "started");
 * await log.close();
 * ```
 */
export class DenoTransport implements SyslogTransport<Promise<void>> {
  #socket: Deno.DatagramConn | null = null;
  #tail: Promise<void> = Promise.resolve();

  /**
   * @param path the log socket
   * @param timeoutMs how long one send may wait for room in the daemon's queue;
   *   0 for no limit (and no timer)
   */
  constructor(readonly path: string, readonly timeoutMs = 1000) {}

  /** Queues one datagram behind earlier ones; resolves when sent or dropped. */
  send(datagram: Uint8Array): Promise<void> {
    this.#tail = this.#tail.then(() => this.#sendNow(datagram));
    return this.#tail;
  }

  /** Waits for queued datagrams, then closes the socket. */
  close(): Promise<void> {
    this.#tail = this.#tail.then(() => this.#drop());
    return this.#tail;
  }

  async #sendNow(datagram: Uint8Array): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // An unbound datagram socket: listenDatagram without a path (not in the typings).
      const options = { transport: "unixpacket" } as Deno.UnixListenOptions & {
        transport: "unixpacket";
      };
      const conn = this.#socket ??= Deno.listenDatagram(options);
      const sent = conn.send(datagram, { transport: "unixpacket", path: this.path });
      sent.catch(() => {}); // a send cancelled by the close below must not surface
      // timeoutMs 0: no timer, a full queue waits as glibc's syslog(3) does. Deno's
      // first setTimeout costs about 10 ms of start-up, too much on the login path (jk_lsh).
      if (this.timeoutMs <= 0) {
        await sent;
        return;
      }
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.timeoutMs);
      });
      if (await Promise.race([sent, timedOut]) === "timeout") this.#drop();
    } catch {
      // no socket, no permission, no --unstable-net: drop the message
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  #drop(): void {
    try {
      this.#socket?.close();
    } catch {
      // already closed
    }
    this.#socket = null;
  }
}

/** Options of a `Syslog`. */
export interface SyslogOptions {
  /** Process id shown in `ident[pid]`; default `Deno.pid`. */
  pid?: number;
  /** Clock for the timestamp; default the current time. */
  now?: () => Date;
}

/**
 * A log opened with an ident and a facility, as `openlog(ident, LOG_PID,
 * facility)`. `log` returns what the transport's `send` returns: `void` for
 * `FfiTransport` (sent before `log` returns), a promise for `DenoTransport`.
 *
 * @example
 * ```ts
 * const log = new Syslog("jk_lsh", LOG_AUTH, new FfiTransport());
 * log.log(LOG_INFO, "jk_lsh version 2.23, started");
 * ```
 */
export class Syslog<R extends void | Promise<void>> {
  readonly #pid: number;
  readonly #now: () => Date;

  /**
   * @param ident program name shown in each entry
   * @param facility facility code, e.g. `LOG_AUTH`
   * @param transport where the datagrams go
   */
  constructor(
    readonly ident: string,
    readonly facility: number,
    readonly transport: SyslogTransport<R>,
    options: SyslogOptions = {},
  ) {
    if (!Number.isInteger(facility) || facility < 0 || facility > 23) {
      throw new RangeError(`syslog facility must be 0-23, not ${facility}`);
    }
    this.#pid = options.pid ?? Deno.pid;
    this.#now = options.now ?? (() => new Date());
  }

  /** The datagram `log` would send now. */
  format(severity: Severity, message: string): Uint8Array {
    return formatDatagram({
      facility: this.facility,
      severity,
      ident: this.ident,
      pid: this.#pid,
      message,
      date: this.#now(),
    });
  }

  /** Logs one message; never throws. */
  log(severity: Severity, message: string): R {
    return this.transport.send(this.format(severity, message));
  }

  /** Closes the transport. */
  close(): R {
    return this.transport.close();
  }
}

/**
 * Opens a log, as `openlog(ident, LOG_PID, facility)`. Nothing is connected
 * until the first message (or `FfiTransport.connect()`).
 *
 * @example
 * ```ts
 * const log = openLog("jk_chrootsh", LOG_AUTH, new FfiTransport());
 * log.log(LOG_ERR, "abort, user alice (1000) has no jail");
 * ```
 */
export function openLog<R extends void | Promise<void>>(
  ident: string,
  facility: number,
  transport: SyslogTransport<R>,
  options: SyslogOptions = {},
): Syslog<R> {
  return new Syslog(ident, facility, transport, options);
}
