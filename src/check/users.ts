/**
 * jk_check's user tests: the host's jailed users (a `/./` home) against the
 * jails, and each jail's etc/passwd against the host.
 *
 * Both passwd files are read as files, never through NSS (a jail's NSS
 * configuration and modules are jail content; the host's could be LDAP).
 * Differences from jailkit, on purpose:
 * - malformed lines are reported and skipped (jailkit crashed on them);
 * - the home comparison applies to users whose host home has a `/./`, i.e.
 *   users jailed in some jail; jailkit also compared system users such as
 *   `daemon` or `nobody` that jk_init copies into a jail's passwd only so that
 *   names resolve, and reported every one of them.
 *
 * @module
 */

import { cleanPath, jailOfHome } from "./config.ts";
import type { FindingCode } from "./findings.ts";
import { errorText } from "../errors.ts";
import { type Parsed, parsePasswd, type PasswdEntry } from "../passwd.ts";

/** Receives one finding. */
export type Report = (code: FindingCode, path: string, message: string, jail: string) => void;

/**
 * The host-side test (jailkit's `testrealpasswd`): each host user whose home
 * lies in one of `jails` must be in that jail's etc/passwd and must have
 * `chrootsh` as shell.
 *
 * @example
 * ```ts
 * checkHostUsers(hostUsers, ["/srv/jail"], "/usr/sbin/jk_chrootsh", report);
 * ```
 */
export function checkHostUsers(
  hostUsers: readonly PasswdEntry[],
  jails: readonly string[],
  chrootsh: string,
  report: Report,
): void {
  const jailNames = new Map<string, Set<string> | null>();
  const namesIn = (jail: string) => {
    if (!jailNames.has(jail)) {
      let names: Set<string> | null = null;
      try {
        const parsed = parsePasswd(Deno.readTextFileSync(`${jail}/etc/passwd`));
        names = new Set(parsed.entries.map((e) => e.name));
      } catch {
        names = null; // missing or unreadable: nobody is in it
      }
      jailNames.set(jail, names);
    }
    return jailNames.get(jail);
  };
  for (const u of hostUsers) {
    const jail = jailOfHome(u.home);
    if (!jail || !jails.includes(jail)) continue;
    if (!namesIn(jail)?.has(u.name)) {
      report(
        "user-not-in-jail",
        `${jail}/etc/passwd`,
        `user ${u.name} does not exist in ${jail}/etc/passwd`,
        jail,
      );
    }
    if (u.shell.trim() !== chrootsh) {
      report(
        "user-shell-not-chrootsh",
        "/etc/passwd",
        `user ${u.name} has a /./ but does not have the ${chrootsh} shell`,
        jail,
      );
    }
  }
}

/**
 * The jail-side test (jailkit's `testjailusers`): each user of the jail's
 * etc/passwd other than root must exist on the host with the same uid and
 * primary gid; a user jailed on the host must have the home `JAIL/./HOME`.
 *
 * @example
 * ```ts
 * checkJailUsers("/srv/jail", hostByName, report);
 * ```
 */
export function checkJailUsers(
  jail: string,
  hostByName: ReadonlyMap<string, PasswdEntry>,
  report: Report,
): void {
  const file = `${jail === "/" ? "" : jail}/etc/passwd`;
  let parsed: Parsed<PasswdEntry>;
  try {
    const info = Deno.lstatSync(file);
    if (!info.isFile) return;
    parsed = parsePasswd(Deno.readTextFileSync(file));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return;
    report("jail-passwd-unreadable", file, `cannot read ${file}: ${errorText(e)}`, jail);
    return;
  }
  for (const bad of parsed.malformed) {
    report(
      "jail-passwd-malformed",
      file,
      `${file}:${bad.line}: not a passwd line: ${JSON.stringify(bad.text.slice(0, 80))}`,
      jail,
    );
  }
  for (const j of parsed.entries) {
    if (j.name === "root") continue;
    const host = hostByName.get(j.name);
    if (!host) {
      report(
        "user-not-on-host",
        file,
        `user ${j.name} in jail ${jail} does not exist on the real system`,
        jail,
      );
      continue;
    }
    if (host.uid !== j.uid || host.gid !== j.gid) {
      report(
        "user-changed",
        file,
        `user ${j.name} is changed in jail ${jail} (uid:gid ${j.uid}:${j.gid}, host ` +
          `${host.uid}:${host.gid})`,
        jail,
      );
    }
    const hostJail = jailOfHome(host.home);
    if (hostJail === null) continue;
    const expected = `${jail === "/" ? "" : jail}/.${j.home.startsWith("/") ? "" : "/"}${j.home}`;
    if (hostJail !== jail || cleanHome(host.home) !== cleanHome(expected)) {
      report(
        "user-home-mismatch",
        file,
        `the real homedir and jail homedir for user ${j.name} do not correspond in jail ${jail} ` +
          `(${host.home}, jail ${j.home})`,
        jail,
      );
    }
  }
}

/** A home compared after `/./` is split off: `/j/./home/u/` and `/j/./home/u` are equal. */
function cleanHome(home: string): string {
  const at = home.indexOf("/./");
  return at < 0
    ? cleanPath(home)
    : `${cleanPath(home.slice(0, at) || "/")}/./${cleanPath(home.slice(at + 3) || ".")}`;
}
