/**
 * Which jails jk_check looks at, and what it is told to ignore in each.
 *
 * Jails come from the sections of `jk_check.ini` (the section name is the
 * jail) and from the `/./` homes of the host's /etc/passwd, as in jailkit;
 * or, beyond jailkit, only from the command line. A section's ignore keys
 * apply to its jail; keys of `[DEFAULT]` apply to every jail unless the
 * jail's section sets the same key (Python configparser's rule, which
 * jailkit's jk_check inherited).
 *
 * Differences from jailkit, on purpose:
 * - path prefixes match whole components: `/j/ho` no longer covers `/j/home`;
 * - `ignorefindings` (new) silences any finding code, optionally below a path;
 * - unknown keys and unusable values are findings, not silently ignored;
 * - a config file that does not parse is a finding and the run goes on with
 *   the jails of /etc/passwd (jailkit died with a traceback).
 *
 * @module
 */

import { normalize } from "../paths.ts";
import { errorText } from "../errors.ts";
import { type Finding, finding, FINDING_CODES, type FindingCode } from "./findings.ts";
import { IniError, type IniFile, type IniSection, readIniFile, unknownKeys } from "../ini.ts";
import type { PasswdEntry } from "../passwd.ts";

/** Keys of a jk_check.ini section. */
export const CHECK_KEYS = [
  "ignorepatheverywhere",
  "ignorepathoncompare",
  "ignorewritableforgroup",
  "ignorewritableforothers",
  "ignoresetuidexecuteforuser",
  "ignoresetuidexecuteforgroup",
  "ignoresetuidexecuteforothers",
  "ignorefindings",
] as const;

/**
 * A set of paths matched as prefixes of whole components: `/j/home` covers
 * `/j/home` and `/j/home/u`, not `/j/homer`.
 *
 * @example
 * ```ts
 * const p = new PathPrefixes(["/j/home/"]);
 * p.covers("/j/home/u/x"); // true
 * p.covers("/j/homer");    // false
 * ```
 */
export class PathPrefixes {
  readonly #exact = new Set<string>();
  readonly #below: string[] = [];

  /** @param paths absolute paths; trailing slashes are ignored */
  constructor(paths: readonly string[]) {
    for (const p of paths) {
      const clean = cleanPath(p);
      this.#exact.add(clean);
      this.#below.push(clean === "/" ? "/" : clean + "/");
    }
  }

  /** Whether nothing is listed (lets the walk skip the test). */
  get empty(): boolean {
    return this.#exact.size === 0;
  }

  /** Whether `path` is one of the paths or lies below one. */
  covers(path: string): boolean {
    if (this.#exact.size === 0) return false;
    if (this.#exact.has(path)) return true;
    for (const b of this.#below) if (path.startsWith(b)) return true;
    return false;
  }
}

/** `ignorefindings` entry: a code, optionally limited to a path and what lies below it. */
export interface IgnoredFinding {
  code: FindingCode;
  under: PathPrefixes | null;
}

/** Everything jk_check needs to know about one jail. */
export interface JailRules {
  /** The jail, normalised, without a trailing slash (`/` stays `/`). */
  jail: string;
  /** Where the jail came from, for -v output. */
  source: "config" | "passwd" | "command line";
  ignoreEverywhere: PathPrefixes;
  ignoreOnCompare: PathPrefixes;
  ignoreWritableForGroup: PathPrefixes;
  ignoreWritableForOthers: PathPrefixes;
  /** Exact paths, as jailkit: a setuid file is ignored when listed for each execute bit it has. */
  ignoreSetuidForUser: Set<string>;
  ignoreSetuidForGroup: Set<string>;
  ignoreSetuidForOthers: Set<string>;
  ignoreFindings: IgnoredFinding[];
}

/** Normalises an absolute path: no `.`, `..`, double or trailing slashes. */
export function cleanPath(path: string): string {
  const n = normalize(path);
  return n.length > 1 ? n.replace(/\/+$/, "") : n;
}

/**
 * Reads jk_check.ini. A missing file is a notice (as jailkit's warning); a
 * file that cannot be read or parsed is an error finding; both give `null`,
 * and the run goes on without it.
 *
 * @example
 * ```ts
 * const findings: Finding[] = [];
 * const ini = await loadCheckConfig("/etc/jailkit/jk_check.ini", findings);
 * ```
 */
export async function loadCheckConfig(path: string, out: Finding[]): Promise<IniFile | null> {
  try {
    return await readIniFile(path, { pythonPercent: true });
  } catch (e) {
    if (e instanceof IniError && e.reason === "missing") {
      out.push(finding(
        "config-missing",
        path,
        `${path} does not exist, only checking jails found in /etc/passwd`,
        null,
      ));
    } else {
      const why = e instanceof IniError ? e.message : `${path}: ${errorText(e)}`;
      out.push(finding("config-invalid", path, `${why}; the file is not used`, null));
    }
    return null;
  }
}

/**
 * The jail of a `/./` home: the text up to and including the slash before
 * the first `/./` (jailkit's jk_check), without the trailing slash.
 *
 * @example
 * ```ts
 * jailOfHome("/srv/jail/./home/alice"); // "/srv/jail"
 * jailOfHome("/home/bob");              // null
 * ```
 */
export function jailOfHome(home: string): string | null {
  const at = home.indexOf("/./");
  if (at < 0) return null;
  return cleanPath(home.slice(0, at + 1) || "/");
}

/**
 * Jails named by `/./` homes in the host's passwd entries, in file order,
 * each once.
 *
 * @example
 * ```ts
 * passwdJails(parsePasswd(text).entries); // ["/srv/jail"]
 * ```
 */
export function passwdJails(users: readonly PasswdEntry[]): string[] {
  const jails: string[] = [];
  for (const u of users) {
    const jail = jailOfHome(u.home);
    if (jail && !jails.includes(jail)) jails.push(jail);
  }
  return jails;
}

/**
 * Jail names from the config sections (every section but `[DEFAULT]`), in
 * file order. A name that is not an absolute path is reported and skipped.
 *
 * @example
 * ```ts
 * configJails(ini, findings); // ["/home/testchroot"]
 * ```
 */
export function configJails(ini: IniFile, out: Finding[]): string[] {
  const jails: string[] = [];
  for (const s of ini.sections()) {
    if (s.name === "DEFAULT") continue;
    if (!s.name.startsWith("/")) {
      out.push(finding(
        "config-bad-value",
        ini.file,
        `${ini.file}:${s.line}: section [${s.name}] is not an absolute jail path; skipped`,
        null,
      ));
      continue;
    }
    const jail = cleanPath(s.name);
    if (!jails.includes(jail)) jails.push(jail);
  }
  return jails;
}

/** The section of a jail, with or without a trailing slash. */
function sectionOf(ini: IniFile | null, jail: string): IniSection | undefined {
  if (!ini) return undefined;
  for (const s of ini.sections()) {
    if (s.name !== "DEFAULT" && s.name.startsWith("/") && cleanPath(s.name) === jail) return s;
  }
  return undefined;
}

/**
 * Reports unknown keys of every section (and of `[DEFAULT]`).
 *
 * @example
 * ```ts
 * reportUnknownKeys(ini, findings);
 * ```
 */
export function reportUnknownKeys(ini: IniFile, out: Finding[]): void {
  for (const s of ini.sections()) {
    for (const { key, line } of unknownKeys(s, CHECK_KEYS)) {
      out.push(finding(
        "config-unknown-key",
        ini.file,
        `${ini.file}:${line}: unknown key "${key}" in [${s.name}] is ignored`,
        null,
      ));
    }
  }
}

/**
 * The rules of one jail: its section's keys, falling back key by key to
 * `[DEFAULT]`. Unusable values (relative paths, unknown finding codes) are
 * reported and dropped.
 *
 * @example
 * ```ts
 * const rules = jailRules(ini, "/home/testchroot", "config", findings);
 * rules.ignoreOnCompare.covers("/home/testchroot/etc/passwd"); // true with the shipped example
 * ```
 */
export function jailRules(
  ini: IniFile | null,
  jail: string,
  source: JailRules["source"],
  out: Finding[],
): JailRules {
  const own = sectionOf(ini, jail);
  const fallback = ini?.section("DEFAULT");
  const list = (key: string): { items: string[]; where: string } => {
    const s = own?.has(key) ? own : fallback?.has(key) ? fallback : undefined;
    if (!s) return { items: [], where: "" };
    return { items: s.list(key), where: `${s.file}:${s.entry(key)!.line}` };
  };
  const bad = (where: string, message: string) =>
    out.push(finding("config-bad-value", ini?.file ?? "", `${where}: ${message}`, jail));
  const paths = (key: string): string[] => {
    const { items, where } = list(key);
    return items.filter((p) => {
      if (p.startsWith("/")) return true;
      bad(where, `${key}: "${p}" is not an absolute path; ignored`);
      return false;
    }).map(cleanPath);
  };
  const ignoreFindings: IgnoredFinding[] = [];
  const { items, where } = list("ignorefindings");
  for (const item of items) {
    const [code, path, extra] = item.split(/[ \t]+/);
    if (!(code in FINDING_CODES) || extra !== undefined || (path && !path.startsWith("/"))) {
      bad(where, `ignorefindings: "${item}" is not "CODE" or "CODE /path"; ignored`);
      continue;
    }
    ignoreFindings.push({
      code: code as FindingCode,
      under: path ? new PathPrefixes([path]) : null,
    });
  }
  return {
    jail,
    source,
    ignoreEverywhere: new PathPrefixes(paths("ignorepatheverywhere")),
    ignoreOnCompare: new PathPrefixes(paths("ignorepathoncompare")),
    ignoreWritableForGroup: new PathPrefixes(paths("ignorewritableforgroup")),
    ignoreWritableForOthers: new PathPrefixes(paths("ignorewritableforothers")),
    ignoreSetuidForUser: new Set(paths("ignoresetuidexecuteforuser")),
    ignoreSetuidForGroup: new Set(paths("ignoresetuidexecuteforgroup")),
    ignoreSetuidForOthers: new Set(paths("ignoresetuidexecuteforothers")),
    ignoreFindings,
  };
}

/**
 * Whether a jail's `ignorefindings` silences a finding.
 *
 * @example
 * ```ts
 * if (!isIgnored(rules, f)) report(f);
 * ```
 */
export function isIgnored(rules: JailRules, f: Finding): boolean {
  return rules.ignoreFindings.some((i) =>
    i.code === f.code && (!i.under || i.under.covers(f.path))
  );
}
