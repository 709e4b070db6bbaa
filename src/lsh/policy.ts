/**
 * jk_lsh's policy: one section of `jk_lsh.ini` read into typed settings, the
 * program lookup (`paths`, `executables`), and the clean environment the
 * program runs with. Pure functions: jk_lsh does the file reads and passes
 * in what it found, so every rule here is unit-testable.
 *
 * Keys (jailkit 2.23's, plus one):
 * - `executables` (required): absolute paths that may run, compared byte for
 *   byte with the resolved program (no normalisation, as jailkit).
 * - `paths`: absolute directories searched, in order, for a bare program name.
 * - `allow_word_expansion` (default off): `~` and `$NAME` expansion by
 *   src/lsh/tokens.ts (never globbing, never command substitution).
 * - `umask` (octal, default **022**; jailkit set 000 when absent, so uploads
 *   were world-writable).
 * - `environment`: `NAME=VALUE` items added to the child's environment.
 * - `sftp_server_flags` (ours): the sftp-server flags a client may pass,
 *   default `-e, -f, -l` (logging only).
 *
 * Differences from jailkit, on purpose: an unknown key, a relative path in
 * `executables` or `paths`, or a malformed `environment` item is an error
 * naming `file:line` (jailkit ignored them silently); `LD_*` variables are
 * refused in `environment` (a preload is code execution).
 *
 * @module
 */

import { JkError } from "../errors.ts";
import { IniError, type IniSection, unknownKeys } from "../ini.ts";
import { DEFAULT_SFTP_SERVER_FLAGS, isSftpServerFlag } from "./grammar.ts";

/** Exit code of a section without `executables` (jailkit: 5). */
export const EXIT_NO_EXECUTABLES = 5;

/** Every key a jk_lsh.ini section may have. */
export const LSH_KEYS: readonly string[] = [
  "executables",
  "paths",
  "allow_word_expansion",
  "umask",
  "environment",
  "sftp_server_flags",
];

/** The settings of one section. */
export interface LshPolicy {
  /** The ini file and section the settings came from, for messages. */
  file: string;
  section: string;
  executables: string[];
  paths: string[];
  wordExpansion: boolean;
  umask: number;
  /** Variables from `environment`, in file order. */
  environment: Record<string, string>;
  sftpServerFlags: string[];
}

/** An absolute path without empty, `.` or `..` components, so it compares as written. */
const CLEAN_ABSOLUTE = /^(\/[^/]+)+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Whether `path` is absolute and already normal (no `//`, `.`, `..`, no
 * trailing `/`). Deno matches `--allow-run` entries lexically; this keeps the
 * ini's spelling and Deno's in step.
 *
 * @example
 * ```ts
 * isCleanAbsolute("/usr/bin/rsync"); // true
 * isCleanAbsolute("/usr/bin/../bin/rsync"); // false
 * ```
 */
export function isCleanAbsolute(path: string): boolean {
  return CLEAN_ABSOLUTE.test(path) && !path.split("/").some((c) => c === "." || c === "..");
}

function fail(section: IniSection, key: string, message: string): IniError {
  const line = section.entry(key)?.line ?? section.line;
  return new IniError(
    `${section.file}:${line}: ${message} (key "${key}" in section [${section.name}])`,
    "value",
    section.file,
    line,
  );
}

/**
 * Reads one section into a policy. Throws `IniError` (exit 1) for a bad
 * value or unknown key, and `JkError` with {@link EXIT_NO_EXECUTABLES} when
 * `executables` is missing or empty.
 *
 * @example
 * ```ts
 * const ini = parseIni("[DEFAULT]\nexecutables = /usr/bin/rsync\n", "jk_lsh.ini");
 * policyFromSection(ini.section("DEFAULT")!).umask; // 0o022
 * ```
 */
export function policyFromSection(section: IniSection): LshPolicy {
  for (const { key, line } of unknownKeys(section, LSH_KEYS)) {
    throw new IniError(
      `${section.file}:${line}: unknown key "${key}" in section [${section.name}] ` +
        `(known: ${LSH_KEYS.join(", ")})`,
      "value",
      section.file,
      line,
    );
  }
  const executables = section.list("executables");
  if (executables.length === 0) {
    throw new JkError(
      `section ${section.name} does not have a key executables`,
      EXIT_NO_EXECUTABLES,
    );
  }
  for (const path of executables) {
    if (!isCleanAbsolute(path)) {
      throw fail(section, "executables", `${JSON.stringify(path)} is not a clean absolute path`);
    }
  }
  const paths = section.list("paths").map((p) => p.length > 1 ? p.replace(/\/+$/, "") : p);
  for (const dir of paths) {
    if (dir !== "/" && !isCleanAbsolute(dir)) {
      throw fail(section, "paths", `${JSON.stringify(dir)} is not a clean absolute directory`);
    }
  }
  const environment: Record<string, string> = {};
  for (const item of section.list("environment")) {
    const eq = item.indexOf("=");
    const name = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? "" : item.slice(eq + 1);
    if (!ENV_NAME.test(name) || value === "") {
      throw fail(section, "environment", `${JSON.stringify(item)} is not NAME=VALUE`);
    }
    if (/^(LD_|DYLD_)/i.test(name)) {
      throw fail(section, "environment", `${name} is never passed to a program`);
    }
    environment[name] = value;
  }
  const sftpServerFlags = section.has("sftp_server_flags")
    ? section.list("sftp_server_flags")
    : [...DEFAULT_SFTP_SERVER_FLAGS];
  for (const flag of sftpServerFlags) {
    if (!isSftpServerFlag(flag)) {
      throw fail(
        section,
        "sftp_server_flags",
        `${JSON.stringify(flag)} is not an sftp-server flag`,
      );
    }
  }
  return {
    file: section.file,
    section: section.name,
    executables,
    paths,
    wordExpansion: section.bool("allow_word_expansion", false),
    umask: section.octal("umask", 0o022),
    environment,
    sftpServerFlags,
  };
}

/** The answer of {@link resolveProgram}. */
export type Resolution =
  | { found: true; path: string }
  | { found: false; reason: "bad-name" | "not-found" };

/**
 * Resolves the first word of a command to a program path. An absolute,
 * clean path is kept when it is a regular file; a bare name (no `/`) is
 * looked up in `paths`, in order, among the candidates `canRun` admits (the
 * build's `--allow-run` fence: jk_lsh cannot even stat the rest). Relative
 * names with a `/` and unclean paths are refused (`bad-name`).
 *
 * jailkit took the first existing file in `paths` and then compared it with
 * `executables`; here a candidate the build could never run is skipped, so
 * a later directory's allowed program can be found.
 *
 * @example
 * ```ts
 * resolveProgram("rsync", ["/usr/local/bin", "/usr/bin"], (p) => p === "/usr/bin/rsync",
 *   () => true); // { found: true, path: "/usr/bin/rsync" }
 * ```
 */
export function resolveProgram(
  word: string,
  paths: readonly string[],
  isRegularFile: (path: string) => boolean,
  canRun: (path: string) => boolean,
): Resolution {
  if (word.startsWith("/")) {
    if (!isCleanAbsolute(word)) return { found: false, reason: "bad-name" };
    return canRun(word) && isRegularFile(word)
      ? { found: true, path: word }
      : { found: false, reason: "not-found" };
  }
  if (word === "" || word.includes("/") || word === "." || word === "..") {
    return { found: false, reason: "bad-name" };
  }
  for (const dir of paths) {
    const candidate = dir === "/" ? `/${word}` : `${dir}/${word}`;
    if (canRun(candidate) && isRegularFile(candidate)) return { found: true, path: candidate };
  }
  return { found: false, reason: "not-found" };
}

/** The fixed search path every program gets, whatever the caller's PATH was. */
export const CHILD_PATH = "/usr/bin:/bin";

/**
 * The whole environment of the program: a fixed minimum, then the ini's
 * `environment` on top. Nothing of jk_lsh's own environment is passed on, so
 * `LD_PRELOAD`, `BASH_ENV`, `RSYNC_RSH`, `GIT_SSH_COMMAND` and the like that
 * reached the login cannot reach the program.
 *
 * `HOME` is `/` (root-owned in a jail) rather than the user's home: the
 * programs read per-user configuration from `$HOME` — git's `~/.gitconfig`
 * can name commands to run (`uploadpack.packObjectsHook`, `core.sshCommand`),
 * rsync's `~/.popt` can alias options — and a user who can upload files can
 * write their own home.
 *
 * @example
 * ```ts
 * childEnvironment("alice", { TZ: "UTC" });
 * // { PATH: "/usr/bin:/bin", HOME: "/", USER: "alice", LOGNAME: "alice", TZ: "UTC" }
 * ```
 */
export function childEnvironment(
  userName: string,
  configured: Readonly<Record<string, string>>,
): Record<string, string> {
  return { PATH: CHILD_PATH, HOME: "/", USER: userName, LOGNAME: userName, ...configured };
}
