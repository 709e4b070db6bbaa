/**
 * Per-program argument grammars of jk_lsh: for the transfer programs a jailed
 * account exists to run, only the server-side argument forms their clients
 * send are accepted, and the argument vector that is executed is rebuilt from
 * what was parsed, never passed through.
 *
 * Why allowlists: rssh and scponly spent a decade patching blocklists (`scp
 * -S`, `-o ProxyCommand`, rsync `-e`, `--rsh` abbreviations, combined short
 * flags, popt aliases) — peers-and-threats §1.4, §1.5, §2.12. jailkit's jk_lsh
 * checks only the program path.
 *
 * The grammar is chosen by the basename of the resolved program:
 * - `scp`: server mode only (`-t` xor `-f`) with `-d -p -q -r -v`; no
 *   `host:` targets; rebuilt as `scp FLAGS -- PATH…`.
 * - `rsync`: `rsync --version`, or `--server` as the first argument, short flags from a fixed set
 *   (no `s`, `e` only as the protocol string `e.xxx`), long options from
 *   {@link RSYNC_LONG_OPTIONS} in full spelling, then `.` and paths; rebuilt
 *   as `rsync --server OPTS -- . PATH…` so a path can never be read as an
 *   option.
 * - `sftp-server`: only the flags the ini allows (`sftp_server_flags`), each
 *   value checked; no operands.
 * - `git-upload-pack`, `git-receive-pack`, `git-upload-archive`: exactly one
 *   repository path, not starting with `-`.
 * Any other program named in the ini gets its words unchanged, as in jailkit:
 * the administrator who lists it vouches for its arguments.
 *
 * @module
 */

/**
 * An argument vector a grammar refuses. The message names the program and
 * the offending argument.
 *
 * @example
 * ```ts
 * try {
 *   checkArguments("/usr/bin/scp", ["scp", "-S", "/bin/sh", "-t", "x"]);
 * } catch (e) {
 *   if (e instanceof GrammarError) console.log(e.message); // "scp: option -S is not allowed"
 * }
 * ```
 */
export class GrammarError extends Error {
  /** @param message one line, naming the program and the argument */
  constructor(message: string) {
    super(message);
    this.name = "GrammarError";
  }
}

/** Settings of the grammars that come from the ini section. */
export interface GrammarOptions {
  /** sftp-server flags the client may pass, e.g. `["-e", "-f", "-l"]`. */
  sftpServerFlags?: readonly string[];
}

/** sftp-server flags allowed when the ini does not say: logging only. */
export const DEFAULT_SFTP_SERVER_FLAGS: readonly string[] = ["-e", "-f", "-l"];

/** A grammar: checks `words` (word 0 is the program as typed) and returns the arguments to pass. */
type Grammar = (words: readonly string[], options: GrammarOptions) => string[];

/** The last path component. */
function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

const GRAMMARS: ReadonlyMap<string, Grammar> = new Map<string, Grammar>([
  ["scp", scpGrammar],
  ["rsync", rsyncGrammar],
  ["sftp-server", sftpServerGrammar],
  ["git-upload-pack", gitGrammar],
  ["git-receive-pack", gitGrammar],
  ["git-upload-archive", gitGrammar],
]);

/**
 * Whether a program path has a grammar (and which, by basename).
 *
 * @example
 * ```ts
 * grammarName("/usr/lib/openssh/sftp-server"); // "sftp-server"
 * grammarName("/usr/bin/id"); // undefined
 * ```
 */
export function grammarName(program: string): string | undefined {
  const name = baseName(program);
  return GRAMMARS.has(name) ? name : undefined;
}

/**
 * Checks the words of a command against the grammar of `program` (the
 * resolved absolute path) and returns the arguments to execute it with
 * (without argv[0]). Throws {@link GrammarError}.
 *
 * @example
 * ```ts
 * checkArguments("/usr/bin/rsync", ["rsync", "--server", "-vlogDtpre.iLsfxCIvu", ".", "up/"]);
 * // ["--server", "-vlogDtpre.iLsfxCIvu", "--", ".", "up/"]
 * checkArguments("/usr/bin/id", ["id", "-u"]); // ["-u"]: no grammar, unchanged
 * ```
 */
export function checkArguments(
  program: string,
  words: readonly string[],
  options: GrammarOptions = {},
): string[] {
  const grammar = GRAMMARS.get(baseName(program));
  return grammar ? grammar(words, options) : words.slice(1);
}

// ---------------------------------------------------------------------------
// scp

/** Flags of scp's server side: sink (-t) or source (-f) mode and their modifiers. */
const SCP_FLAGS = new Set(["d", "f", "p", "q", "r", "t", "v"]);

/** Options scp would take a value for: named in refusals, never accepted. */
function scpGrammar(words: readonly string[]): string[] {
  const flags = new Set<string>();
  let i = 1;
  for (; i < words.length; i++) {
    const arg = words[i];
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    for (const letter of arg.slice(1)) {
      if (!SCP_FLAGS.has(letter)) throw new GrammarError(`scp: option -${letter} is not allowed`);
      flags.add(letter);
    }
  }
  const paths = words.slice(i);
  const sink = flags.has("t"), source = flags.has("f");
  if (sink === source) {
    throw new GrammarError("scp: exactly one of -t (upload) or -f (download) is required");
  }
  if (paths.length === 0 || (sink && paths.length !== 1)) {
    throw new GrammarError(
      sink ? "scp: -t takes exactly one target" : "scp: -f needs at least one source",
    );
  }
  for (const path of paths) {
    if (path === "") throw new GrammarError("scp: empty path");
    // host:path or user@host:path would make the server-side scp a client that runs ssh.
    const colon = path.indexOf(":");
    if (colon >= 0 && (path.indexOf("/") < 0 || colon < path.indexOf("/"))) {
      throw new GrammarError(`scp: remote target ${JSON.stringify(path)} is not allowed`);
    }
  }
  const ordered = [...SCP_FLAGS].filter((f) => flags.has(f)).map((f) => `-${f}`);
  return [...ordered, "--", ...paths];
}

// ---------------------------------------------------------------------------
// rsync

/**
 * Short rsync options without a value that a server may receive. Excluded on
 * purpose: `s` (protect/secluded args: the real arguments would arrive inside
 * the protocol, past this check), `e` except as the protocol string, and every
 * letter that takes a value (`B`, `@`, `f`, `F` filter rules, `M`, `T`).
 */
const RSYNC_SHORT = new Set("0468ACDEHIJKLNOPRSUWXabcdghiklmnopqrtuvxyz".split(""));

/** How an rsync long option's value is checked. */
type RsyncValue =
  | "none"
  /** A size, count or time: see `RSYNC_NUMBER`. */
  | "number"
  /** Free text without control characters (already guaranteed). */
  | "text"
  /** A path inside the jail; must not be empty. */
  | "path";

/**
 * The long options a server may receive, in full spelling, and their value
 * kind. Not listed, so refused: `--rsh`/`-e` as a shell, `--rsync-path`,
 * `--daemon`, `--config`, `--dparam`, `--log-file`, `--log-file-format`,
 * `--write-batch`, `--read-batch`, `--only-write-batch`, `--protect-args`,
 * `--secluded-args`, `--copy-devices`, `--write-devices`, `--no-munge-links`,
 * `--remote-option`, `--early-input`, `--password-file`, `--address`,
 * `--port`, `--sockopts`, and any abbreviation.
 */
export const RSYNC_LONG_OPTIONS: ReadonlyMap<string, RsyncValue> = new Map<string, RsyncValue>([
  ...[
    "sender",
    "acls",
    "append",
    "append-verify",
    "atimes",
    "checksum",
    "copy-dirlinks",
    "copy-links",
    "copy-unsafe-links",
    "crtimes",
    "delay-updates",
    "delete",
    "delete-after",
    "delete-before",
    "delete-delay",
    "delete-during",
    "delete-excluded",
    "delete-missing-args",
    "dry-run",
    "executability",
    "existing",
    "fake-super",
    "force",
    "from0",
    "fsync",
    "fuzzy",
    "group",
    "hard-links",
    "ignore-errors",
    "ignore-existing",
    "ignore-missing-args",
    "ignore-times",
    "inplace",
    "keep-dirlinks",
    "links",
    "list-only",
    "mkpath",
    "msgs2stderr",
    "munge-links",
    "new-compress",
    "no-implied-dirs",
    "no-msgs2stderr",
    "no-r",
    "no-relative",
    "no-specials",
    "no-W",
    "numeric-ids",
    "old-compress",
    "omit-dir-times",
    "omit-link-times",
    "one-file-system",
    "open-noatime",
    "owner",
    "partial",
    "perms",
    "preallocate",
    "prune-empty-dirs",
    "recursive",
    "relative",
    "remove-sent-files",
    "remove-source-files",
    "safe-links",
    "size-only",
    "sparse",
    "specials",
    "stats",
    "super",
    "times",
    "update",
    "use-qsort",
    "whole-file",
  ].map((name): [string, RsyncValue] => [name, "none"]),
  ...[
    "block-size",
    "bwlimit",
    "checksum-seed",
    "compress-level",
    "max-alloc",
    "max-delete",
    "max-size",
    "min-size",
    "modify-window",
    "timeout",
  ].map((name): [string, RsyncValue] => [name, "number"]),
  ...[
    "checksum-choice",
    "compress-choice",
    "debug",
    "groupmap",
    "iconv",
    "info",
    "log-format",
    "out-format",
    "skip-compress",
    "stderr",
    "suffix",
    "usermap",
  ].map((name): [string, RsyncValue] => [name, "text"]),
  ...[
    "backup-dir",
    "compare-dest",
    "copy-dest",
    "files-from",
    "link-dest",
    "partial-dir",
    "temp-dir",
  ].map((name): [string, RsyncValue] => [name, "path"]),
]);

/** rsync numbers and sizes: `30`, `-1`, `1.5M`, `10KiB`, `1M+1`. */
const RSYNC_NUMBER = /^-?[0-9][0-9.]{0,15}[A-Za-z]{0,3}([+-]1)?$/;
/** A short-option cluster, optionally ending in the server's protocol string `e[digits].flags`. */
const RSYNC_CLUSTER = /^-([^e]*)(e[0-9]*\.[A-Za-z]*)?$/;
/** `--block-size` as the client sends it: `-B` glued to a number. */
const RSYNC_BLOCK_SIZE = /^-B[0-9]{1,10}$/;

function rsyncGrammar(words: readonly string[]): string[] {
  // A version query runs nothing and transfers nothing (and is what monitoring sends).
  if (words.length === 2 && words[1] === "--version") return ["--version"];
  if (words[1] !== "--server") {
    throw new GrammarError("rsync: only the server side (rsync --server …) is allowed");
  }
  const options: string[] = ["--server"];
  let sender = false;
  let i = 2;
  for (; i < words.length; i++) {
    const arg = words[i];
    if (arg === ".") break;
    if (arg === "--") {
      i++;
      if (words[i] !== ".") throw new GrammarError('rsync: expected "." after "--"');
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const kind = RSYNC_LONG_OPTIONS.get(name);
      if (kind === undefined) throw new GrammarError(`rsync: option --${name} is not allowed`);
      if (kind === "none") {
        if (eq >= 0) throw new GrammarError(`rsync: option --${name} takes no value`);
        if (name === "sender") sender = true;
        options.push(`--${name}`);
        continue;
      }
      let value: string | undefined;
      if (eq >= 0) value = arg.slice(eq + 1);
      else value = words[++i];
      if (value === undefined || value === "") {
        throw new GrammarError(`rsync: option --${name} needs a value`);
      }
      if (kind === "number" && !RSYNC_NUMBER.test(value)) {
        throw new GrammarError(`rsync: bad value for --${name}: ${JSON.stringify(value)}`);
      }
      options.push(`--${name}=${value}`);
      continue;
    }
    if (RSYNC_BLOCK_SIZE.test(arg)) {
      options.push(arg);
      continue;
    }
    const cluster = RSYNC_CLUSTER.exec(arg);
    if (!arg.startsWith("-") || arg === "-") {
      throw new GrammarError(`rsync: unexpected argument ${JSON.stringify(arg)} before "."`);
    }
    const letters = cluster ? cluster[1] : arg.slice(1);
    for (const letter of letters) {
      if (!RSYNC_SHORT.has(letter)) {
        throw new GrammarError(`rsync: option -${letter} is not allowed`);
      }
    }
    if (!cluster || (cluster[1] === "" && !cluster[2])) {
      throw new GrammarError(`rsync: unexpected argument ${JSON.stringify(arg)} before "."`);
    }
    options.push(arg);
  }
  if (words[i] !== ".") throw new GrammarError('rsync: missing "." before the paths');
  const paths = words.slice(i + 1);
  if (paths.length === 0) throw new GrammarError("rsync: no path given");
  if (!sender && paths.length !== 1) {
    throw new GrammarError("rsync: a receiving server takes exactly one destination");
  }
  if (paths.some((p) => p === "")) throw new GrammarError("rsync: empty path");
  return [...options, "--", ".", ...paths];
}

// ---------------------------------------------------------------------------
// sftp-server

/** sftp-server's flags (OpenSSH 9) and how each value is checked; `null`: no value. */
const SFTP_SERVER_FLAGS: ReadonlyMap<string, RegExp | null> = new Map<string, RegExp | null>([
  ["-e", null],
  ["-h", null],
  ["-R", null],
  ["-d", /^.+$/],
  ["-f", /^(DAEMON|USER|AUTH|AUTHPRIV|LOCAL[0-7])$/],
  ["-l", /^(QUIET|FATAL|ERROR|INFO|VERBOSE|DEBUG|DEBUG1|DEBUG2|DEBUG3)$/],
  ["-P", /^[a-z0-9@.,-]+$/],
  ["-p", /^[a-z0-9@.,-]+$/],
  ["-Q", /^[a-z0-9@.-]+$/],
  ["-u", /^0?[0-7]{1,3}$/],
]);

/**
 * Whether a flag is one sftp-server has, for checking `sftp_server_flags`.
 *
 * @example
 * ```ts
 * isSftpServerFlag("-R"); // true
 * isSftpServerFlag("-x"); // false
 * ```
 */
export function isSftpServerFlag(flag: string): boolean {
  return SFTP_SERVER_FLAGS.has(flag);
}

function sftpServerGrammar(words: readonly string[], options: GrammarOptions): string[] {
  const allowed = new Set(options.sftpServerFlags ?? DEFAULT_SFTP_SERVER_FLAGS);
  const out: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const arg = words[i];
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      throw new GrammarError(`sftp-server: unexpected argument ${JSON.stringify(arg)}`);
    }
    // getopt-style: a cluster of flags; a flag with a value takes the rest or the next word.
    for (let k = 1; k < arg.length; k++) {
      const flag = `-${arg[k]}`;
      const rule = SFTP_SERVER_FLAGS.get(flag);
      if (rule === undefined || !allowed.has(flag)) {
        throw new GrammarError(`sftp-server: option ${flag} is not allowed`);
      }
      if (rule === null) {
        out.push(flag);
        continue;
      }
      const value = k + 1 < arg.length ? arg.slice(k + 1) : words[++i];
      if (value === undefined || !rule.test(value)) {
        throw new GrammarError(
          `sftp-server: bad or missing value for ${flag}: ${JSON.stringify(value ?? "")}`,
        );
      }
      out.push(flag, value);
      break;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// git

function gitGrammar(words: readonly string[]): string[] {
  const name = baseName(words[0]);
  if (words.length !== 2) {
    throw new GrammarError(`${name}: exactly one repository path is required`);
  }
  const path = words[1];
  if (path === "" || path.startsWith("-")) {
    throw new GrammarError(`${name}: bad repository path ${JSON.stringify(path)}`);
  }
  return [path];
}
