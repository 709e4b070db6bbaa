/**
 * A syslog client that writes RFC 3164 datagrams the way glibc's syslog(3)
 * does for the C jailkit tools (`openlog(ident, LOG_PID, facility)`):
 *
 *     <PRI>Mmm dd hh:mm:ss ident[pid]: message
 *
 * PRI is facility * 8 + severity, the day is padded with a space, the time is
 * local, and there is no trailing newline or NUL. Unlike glibc, control
 * characters in the message are escaped (see `sanitize`), so a user-supplied
 * string cannot start a forged log line, and the datagram is capped at
 * `MAX_DATAGRAM` bytes, so an overlong message cannot make the send fail and
 * the line vanish.
 *
 * Logging never breaks a tool: a missing socket, a refused connection, a busy
 * daemon or a missing permission drops the message silently.
 *
 * Two transports:
 * - `FfiTransport` (this module): libc socket/connect/send through `src/libc.ts`. Needs
 *   unscoped `--allow-ffi` (which the privileged tools have anyway) and
 *   nothing else; reaches `/dev/log`. The socket can be connected before
 *   chroot and keeps working after chroot and after dropping privileges.
 * - `DenoTransport` (in `src/syslog_core.ts`, re-exported here, so that a
 *   tool without FFI can log without loading `src/libc.ts`): an unbound `Deno.listenDatagram` socket. Needs
 *   `--unstable-net`, `--allow-net=unix:PATH` and `--allow-write=PATH`; Deno
 *   refuses any PATH under /dev (so `/dev/log`) short of `--allow-all`.
 *
 * @module
 */

import {
  AF_UNIX,
  close,
  connectUnix,
  EBADF,
  ECONNREFUSED,
  ENOTCONN,
  ENOTSOCK,
  LibcError,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  send,
  SOCK_DGRAM,
  socket,
} from "./libc.ts";
import { openLog, type Severity, type Syslog, type SyslogTransport } from "./syslog_core.ts";

export * from "./syslog_core.ts";

/**
 * Sends through libc: an AF_UNIX datagram socket connected to `path`
 * (default `/dev/log`). Connects on first use or on `connect()`; after a
 * failed connect, each send tries again (as glibc does), so a tool that first
 * logs after chroot reaches the jail's own `/dev/log`. Sends never block
 * (`MSG_DONTWAIT`: a wedged daemon costs a message, not a hung login) and never
 * raise SIGPIPE. When the daemon restarts, one send reconnects and retries,
 * unless `pin()` was called (after chroot the path would be the jail's).
 * The socket is close-on-exec; `fd` lets a shell close it before execve.
 *
 * Close it with `close()`, not by closing `fd` (or `closeFrom`) behind its
 * back: the number may be reused by then.
 *
 * @example
 * ```ts
 * const transport = new FfiTransport();
 * transport.connect(); // before chroot: the host's /dev/log
 * const log = openLog("jk_chrootsh", LOG_AUTH, transport);
 * // ... chroot, drop privileges ...
 * log.log(LOG_INFO, "now entering jail /srv/jail for user alice (1000)");
 * transport.close();
 * ```
 */
export class FfiTransport implements SyslogTransport<void> {
  #fd: number | null = null;
  #pinned = false;

  /** @param path the log socket; `/dev/log` unless configured */
  constructor(readonly path = "/dev/log") {}

  /** The connected socket, or `null` when not connected. */
  get fd(): number | null {
    return this.#fd;
  }

  /**
   * Connects now if not connected; returns whether the socket is connected.
   * Never throws (no FFI permission, no socket: `false`).
   */
  connect(): boolean {
    if (this.#fd !== null) return true;
    if (this.#pinned) return false;
    let fd: number;
    try {
      fd = socket(AF_UNIX, SOCK_DGRAM);
    } catch {
      return false;
    }
    try {
      connectUnix(fd, this.path);
    } catch {
      closeQuietly(fd);
      return false;
    }
    this.#fd = fd;
    return true;
  }

  /** Sends one datagram or drops it; never throws. */
  send(datagram: Uint8Array): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!this.connect()) return;
      try {
        send(this.#fd!, datagram, MSG_DONTWAIT | MSG_NOSIGNAL);
        return;
      } catch (e) {
        const errno = e instanceof LibcError ? e.errno : 0;
        if (errno === EBADF || errno === ENOTSOCK) {
          this.#fd = null; // closed behind our back: forget the number, never close it
        } else if (errno === ECONNREFUSED || errno === ENOTCONN) {
          this.close(); // the daemon went away or restarted: reconnect once
        } else {
          return; // EAGAIN (daemon busy), EMSGSIZE, anything else: drop the message
        }
      }
    }
  }

  /**
   * Never connect again, not even to reconnect after a daemon restart: after
   * chroot the path names the jail's socket, which the jail's owner controls.
   */
  pin(): void {
    this.#pinned = true;
  }

  /** Closes the socket if open. */
  close(): void {
    if (this.#fd !== null) closeQuietly(this.#fd);
    this.#fd = null;
  }
}

function closeQuietly(fd: number): void {
  try {
    close(fd);
  } catch {
    // nothing useful to do: the fd is gone either way
  }
}

/**
 * The host's log for a process about to chroot: an `FfiTransport` to `path`,
 * connected by `connect()` while the host's socket is still reachable. If that
 * connect failed, nothing is logged at all; `pin()` after chroot makes sure a
 * socket not connected by then is never opened, because the same path would
 * now name the jail's socket, which the jail's owner controls.
 *
 * @example
 * ```ts
 * const log = new HostLog("jk_chrootsh", LOG_AUTH, "/dev/log");
 * log.connect();
 * log.log(LOG_INFO, "now entering jail /srv/jail for user alice (1000)");
 * enterJail("/srv/jail");
 * log.pin();
 * ```
 */
export class HostLog {
  readonly #transport: FfiTransport;
  readonly #log: Syslog<void>;
  #usable = true;

  /**
   * @param ident program name shown in each entry
   * @param facility facility code, e.g. `LOG_AUTH`
   * @param path the host's log socket
   */
  constructor(ident: string, facility: number, path: string) {
    this.#transport = new FfiTransport(path);
    this.#log = openLog(ident, facility, this.#transport);
  }

  /** Connects now, while the host's socket is still reachable; a failure disables the log. */
  connect(): void {
    this.#usable = this.#transport.connect();
  }

  /**
   * After chroot: a socket not connected by now would be the jail's; never
   * connect again (a restart of the host's daemon then costs the messages).
   */
  pin(): void {
    this.#transport.pin();
    if (this.#transport.fd === null) this.#usable = false;
  }

  /** Logs one message if the log is usable; never throws. */
  log(severity: Severity, message: string): void {
    if (this.#usable) this.#log.log(severity, message);
  }
}
