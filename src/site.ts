/**
 * Where this copy of jailkit is installed.
 *
 * The checked-in values are the defaults of a plain `deno task install`. The
 * installer stages a copy of the sources and rewrites the `INSTALLED` literal in
 * that copy (see `src/install.ts`), so every path a tool uses at run time — its
 * ini files, the jk_chrootsh it writes into /etc/passwd, the jk_lsh it puts in a
 * jail — follows the chosen `--prefix` and `--sysconfdir`.
 *
 * @module
 */

/** An install location: a root prefix and the directory holding the ini files. */
export interface Site {
  /** Prefix prepended to `/usr/sbin`, `/usr/bin`, `/usr/lib/jailkit`; `""` means `/`. */
  prefix: string;
  /** Absolute directory of `jk_*.ini` (jailkit's INIPREFIX). */
  sysconfdir: string;
  /**
   * The system logger's datagram socket; `/dev/log` when absent. Set only at
   * install time (`--log-socket`), never from the environment: a privileged
   * tool must not let its caller choose where its log lines go.
   */
  logSocket?: string;
}

/**
 * The site this copy was installed for.
 *
 * @example
 * ```ts
 * import { INSTALLED, iniPath } from "./site.ts";
 * const lshIni = iniPath(INSTALLED, "jk_lsh"); // "/etc/jailkit/jk_lsh.ini"
 * ```
 */
export const INSTALLED: Site = { prefix: "", sysconfdir: "/etc/jailkit" };

/**
 * Absolute path of an ini file of the site.
 *
 * @example
 * ```ts
 * iniPath({ prefix: "/opt/x", sysconfdir: "/opt/x/etc/jailkit" }, "jk_init");
 * // "/opt/x/etc/jailkit/jk_init.ini"
 * ```
 */
export function iniPath(site: Site, tool: string): string {
  return `${site.sysconfdir}/${tool}.ini`;
}

/**
 * Absolute path of an installed tool (`usr/sbin` or `usr/bin` below the prefix).
 *
 * @example
 * ```ts
 * toolPath({ prefix: "", sysconfdir: "/etc/jailkit" }, "usr/sbin", "jk_chrootsh");
 * // "/usr/sbin/jk_chrootsh"
 * ```
 */
export function toolPath(site: Site, dir: "usr/sbin" | "usr/bin", name: string): string {
  return `${site.prefix}/${dir}/${name}`;
}

/**
 * Directory of jailkit's private files: compiled tools behind the trampoline,
 * and in dev installs the Deno runtime, the sources and the module cache.
 *
 * @example
 * ```ts
 * libDir({ prefix: "", sysconfdir: "/etc/jailkit" }); // "/usr/lib/jailkit"
 * ```
 */
export function libDir(site: Site): string {
  return `${site.prefix}/usr/lib/jailkit`;
}

/**
 * The system logger's socket of a site (`/dev/log` unless installed otherwise).
 *
 * @example
 * ```ts
 * logSocketPath({ prefix: "", sysconfdir: "/etc/jailkit" }); // "/dev/log"
 * ```
 */
export function logSocketPath(site: Site): string {
  return site.logSocket ?? "/dev/log";
}

/**
 * Where jk_lsh sends its log datagrams: `PREFIX/usr/lib/jailkit/dev-log`, a
 * symlink to the log socket (`/dev/log`, or in a jail the jail's `/dev/log`
 * that jk_socketd serves). Deno refuses `/dev/log` itself to anything short of
 * `--allow-all`, but checks a socket path without following the link. Without
 * the link jk_lsh's log lines are dropped; refusals still go to stderr.
 *
 * @example
 * ```ts
 * lshLogSocket({ prefix: "", sysconfdir: "/etc/jailkit" }); // "/usr/lib/jailkit/dev-log"
 * ```
 */
export function lshLogSocket(site: Site): string {
  return `${libDir(site)}/dev-log`;
}

/**
 * Checks that a site's paths are absolute, normalised and free of characters
 * that cannot be baked safely into a C string or a permission flag.
 * Returns a problem description, or `null` when the site is usable.
 *
 * @example
 * ```ts
 * validateSite({ prefix: "opt", sysconfdir: "/etc/jailkit" });
 * // "prefix must be empty or an absolute path: opt"
 * ```
 */
export function validateSite(site: Site): string | null {
  const clean = (p: string) =>
    p.startsWith("/") && !p.endsWith("/") && !/\/\.{0,2}\//.test(p + "/") &&
    !/[^A-Za-z0-9_.+@/-]/.test(p);
  if (site.prefix !== "" && !clean(site.prefix)) {
    return `prefix must be empty or an absolute path: ${site.prefix}`;
  }
  if (!clean(site.sysconfdir)) {
    return `sysconfdir must be an absolute path: ${site.sysconfdir}`;
  }
  if (site.logSocket !== undefined && !clean(site.logSocket)) {
    return `log socket must be an absolute path: ${site.logSocket}`;
  }
  return null;
}
