/**
 * jk_check — audit jails.
 *
 * `jk_check [-v] [-c CONFIG] [--json] [--exit-zero] [JAIL...]`
 *
 * Without JAIL it checks every jail of jk_check.ini and every jail of a `/./`
 * home in /etc/passwd, as jailkit does; with JAIL, only those (jailkit ignored
 * its arguments). Each jail gets: the base-directory test (the jail, its
 * system subdirectories and every directory above it up to `/`), the walk of
 * every entry with the comparison of every file with the host's (whole files,
 * not jailkit's one random kilobyte), `etc/ld.so.preload`, the library
 * closure of every executable, and the user tests. Host-wide: the
 * protected_hardlinks/symlinks and Yama ptrace sysctls. See
 * src/check/findings.ts for every finding code. The byte comparisons and the
 * library closures run on worker threads beside the walk (src/check/jobs.ts).
 *
 * Read only: it opens files for reading and nothing else; it never writes,
 * runs a program or loads a library. Checks that its permissions keep out of
 * reach are printed as `not-checked` notices.
 *
 * Output: `ERROR:`/`WARNING:`/`NOTICE:` lines ending in `[code]`, or with
 * `--json` one JSON object per line. Exit codes: 0 no problem found (notices
 * do not count) or `--exit-zero`; 1 problems found; 2 usage error.
 *
 * @module
 */

import { errorText, JkError, parseCommandLine, runMain } from "./cli.ts";
import {
  cleanPath,
  configJails,
  isIgnored,
  type JailRules,
  jailRules,
  loadCheckConfig,
  passwdJails,
  reportUnknownKeys,
} from "./check/config.ts";
import {
  type Finding,
  finding,
  FINDING_CODES,
  type FindingCode,
  formatJson,
  formatText,
  isProblem,
} from "./check/findings.ts";
import { checkPtraceScope, checkSysctls, reportCapabilitiesUnchecked } from "./check/host.ts";
import { reportUnresolved } from "./check/libs.ts";
import { reportComparison, walkJail } from "./check/tree.ts";
import { CheckJobs } from "./check/jobs.ts";
import { checkHostUsers, checkJailUsers } from "./check/users.ts";
import type { IniFile } from "./ini.ts";
import { checkJail } from "./jailsafety.ts";
import { parsePasswd, type PasswdEntry } from "./passwd.ts";
import { iniPath, INSTALLED, toolPath } from "./site.ts";

const USAGE = `jk_check, checks jails for security problems
Usage: jk_check [OPTIONS] [JAIL...]
  -c, --configfile=FILE  config file (default ${iniPath(INSTALLED, "jk_check")})
  -v, --verbose          show what is being tested
      --json             one JSON object per finding: code, severity, path, message, jail
      --exit-zero        exit 0 even when problems are found (jailkit's behaviour)
      --codes            list every finding code with its severity, and exit
  -h, --help             print this message
Without JAIL: every jail of the config file and of a /./ home in /etc/passwd.
Exit: 0 no problem found, 1 problems found, 2 usage error.`;

/** What to check and where findings go. */
export interface CheckOptions {
  /** jk_check.ini to read. */
  configFile: string;
  /** Jails named on the command line; empty means config + /etc/passwd. */
  jails: string[];
  /** The host passwd file. */
  passwdFile: string;
  /** The shell a jailed host user must have. */
  chrootsh: string;
  /** Receives every finding, in order. */
  emit: (f: Finding) => void;
  /** Receives -v progress lines, or nothing. */
  verbose: (line: string) => void;
}

/** Host directories whose filesystem makes an outside hard link dangerous. */
const HOST_SYSTEM_DIRS = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib"];

function hostSystemDevs(): Set<number> {
  const devs = new Set<number>();
  for (const dir of HOST_SYSTEM_DIRS) {
    try {
      devs.add(Deno.statSync(dir).dev);
    } catch {
      // absent on this host
    }
  }
  return devs;
}

/** The host's users, by name; an unreadable file is a finding and gives no users. */
function readHostUsers(opts: CheckOptions): PasswdEntry[] {
  try {
    return parsePasswd(Deno.readTextFileSync(opts.passwdFile)).entries;
  } catch (e) {
    const file = opts.passwdFile;
    opts.emit(finding("passwd-unreadable", file, `cannot read ${file}: ${errorText(e)}`, null));
    return [];
  }
}

/** The jails to check with where each came from; bad names are findings. */
function chooseJails(
  opts: CheckOptions,
  ini: IniFile | null,
  hostUsers: PasswdEntry[],
  out: Finding[],
): [string, JailRules["source"]][] {
  const chosen = new Map<string, JailRules["source"]>();
  if (opts.jails.length > 0) {
    for (const j of opts.jails) {
      if (!j.startsWith("/")) {
        out.push(finding("jail-invalid", j, `${j} is not an absolute path; not checked`, null));
        continue;
      }
      chosen.set(cleanPath(j), "command line");
    }
  } else {
    for (const j of ini ? configJails(ini, out) : []) chosen.set(j, "config");
    for (const j of passwdJails(hostUsers)) if (!chosen.has(j)) chosen.set(j, "passwd");
  }
  return [...chosen];
}

/** What every jail shares. */
interface RunShared {
  hostByName: Map<string, PasswdEntry>;
  workers: CheckJobs;
  systemDevs: Set<number>;
}

/**
 * Runs every test on one jail. Its findings are emitted sorted by path
 * (then in the order found), so the output does not depend on which worker
 * finished first.
 */
async function checkOneJail(opts: CheckOptions, rules: JailRules, shared: RunShared) {
  const found: Finding[] = [];
  try {
    await testJail(opts, rules, shared, found);
  } finally {
    found.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0).forEach(opts.emit);
  }
}

async function testJail(opts: CheckOptions, rules: JailRules, shared: RunShared, out: Finding[]) {
  const { jail } = rules;
  const report = (code: FindingCode, path: string, message: string) => {
    const f = finding(code, path, message, jail);
    if (!isIgnored(rules, f)) out.push(f);
  };
  const inJail = (p: string) => p === jail || p.startsWith(jail === "/" ? "/" : `${jail}/`);

  let root: Deno.FileInfo;
  try {
    root = Deno.lstatSync(jail);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      report("jail-missing", jail, `cannot check files in ${jail}, it does not exist`);
    } else {
      report("walk-error", jail, `cannot check files in ${jail}: ${errorText(e)}`);
    }
    return;
  }

  opts.verbose(`testing basedir ${jail}`);
  let ancestorsSafe = true;
  for (const f of checkJail(jail)) {
    if (!inJail(f.path)) {
      ancestorsSafe = false;
      report("ancestor-unsafe", f.path, `${f.message} (above jail ${jail})`);
    } else if (f.problem !== "group-writable" && f.problem !== "other-writable") {
      // (Writable directories in the jail are the walk's to report, with the ignore keys.)
      report("basedir-unsafe", f.path, f.message);
    }
  }
  if (!root.isDirectory) return; // checkJail said why (a symlink, not a directory)

  const preload = `${jail === "/" ? "" : jail}/etc/ld.so.preload`;
  try {
    Deno.lstatSync(preload);
    report(
      "ld-so-preload",
      preload,
      `${preload} exists: it is loaded into every program of the jail`,
    );
  } catch {
    // absent, as it should be
  }

  opts.verbose(`testing files in ${jail}`);
  const jobs = shared.workers.jail(jail);
  const walked = walkJail({
    rules,
    report,
    compareContents: (path, host, size, trusted, executable) =>
      jobs.compare(path, host, size, trusted, executable),
    executable: (rel) => jobs.executable(rel),
    ancestorsSafe,
    hostSystemDevs: shared.systemDevs,
  }, root);
  opts.verbose(`testing the users of ${jail}`);
  checkJailUsers(jail, shared.hostByName, (code, path, message) => report(code, path, message));

  const results = await jobs.results();
  for (const r of results.compared) reportComparison(r, report);
  reportUnresolved(jail, results.unresolved, report);
  for (const w of results.warnings) opts.verbose(`${jail}: ${w}`);
  opts.verbose(
    `${jail}: ${walked.entries} entries, ${walked.compared} files compared byte for byte, ` +
      `libraries of ${walked.executables} executables resolved (${walked.untrustedExecutables} ` +
      "in directories a user can change left out)",
  );
}

/**
 * Runs every check and passes each finding to `opts.emit`; returns the
 * number of problems (findings other than notices).
 *
 * @example
 * ```ts
 * const problems = await runChecks({
 *   configFile: "/etc/jailkit/jk_check.ini", jails: ["/srv/jail"], passwdFile: "/etc/passwd",
 *   chrootsh: "/usr/sbin/jk_chrootsh", emit: (f) => console.log(formatText(f)), verbose: () => {},
 * });
 * ```
 */
export async function runChecks(opts: CheckOptions): Promise<number> {
  let problems = 0;
  const emit = opts.emit;
  opts = { ...opts, emit: (f) => (isProblem(f) && problems++, emit(f)) };

  const early: Finding[] = [];
  const ini = await loadCheckConfig(opts.configFile, early);
  if (ini) reportUnknownKeys(ini, early);
  const hostUsers = readHostUsers(opts);
  const jails = chooseJails(opts, ini, hostUsers, early);
  const ruleSets = jails.map(([jail, source]) => jailRules(ini, jail, source, early));
  early.forEach(opts.emit);

  const shared: RunShared = {
    hostByName: new Map(hostUsers.map((u) => [u.name, u])),
    workers: new CheckJobs(),
    systemDevs: hostSystemDevs(),
  };
  try {
    // Workers load their modules while the host checks and the first walk run.
    if (ruleSets.length > 0) shared.workers.start();

    const host = (code: FindingCode, path: string, message: string) =>
      opts.emit(finding(code, path, message, null));
    checkSysctls(host);
    checkPtraceScope(host);
    reportCapabilitiesUnchecked(host);

    checkHostUsers(
      hostUsers,
      jails.map(([j]) => j),
      opts.chrootsh,
      (code, path, message, jail) => {
        const rules = ruleSets.find((r) => r.jail === jail);
        const f = finding(code, path, message, jail);
        if (!rules || !isIgnored(rules, f)) opts.emit(f);
      },
    );

    for (const rules of ruleSets) {
      opts.verbose(`checking jail ${rules.jail} (from the ${rules.source})`);
      await checkOneJail(opts, rules, shared);
    }
  } finally {
    shared.workers.close();
  }
  return problems;
}

/** Buffered stdout: one write per batch of lines; a closed pipe ends the program quietly. */
class Output {
  #lines: string[] = [];
  readonly #encoder = new TextEncoder();

  line(text: string): void {
    this.#lines.push(text);
    if (this.#lines.length >= 256) this.flush();
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    const bytes = this.#encoder.encode(this.#lines.join("\n") + "\n");
    this.#lines = [];
    try {
      for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
    } catch (e) {
      if (e instanceof Deno.errors.BrokenPipe) Deno.exit(0);
      throw e;
    }
  }
}

/**
 * The command line: parses `args`, runs the checks, prints, returns the exit code.
 *
 * @example
 * ```ts
 * if (import.meta.main) await runMain("jk_check", () => main(Deno.args));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    configfile: { type: "string", short: "c" },
    verbose: { type: "boolean", short: "v" },
    json: { type: "boolean" },
    "exit-zero": { type: "boolean" },
    codes: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, { usageExit: 2 });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.codes) {
    for (const [code, info] of Object.entries(FINDING_CODES)) {
      console.log(`${code.padEnd(28)} ${info.severity.padEnd(8)} ${info.summary}`);
    }
    return 0;
  }
  const configFile = (values.configfile as string | undefined) ?? iniPath(INSTALLED, "jk_check");
  if (configFile === "") throw new JkError("--configfile needs a file name; try --help", 2);
  const out = new Output();
  const json = values.json === true;
  const problems = await runChecks({
    configFile,
    jails: positionals,
    passwdFile: "/etc/passwd",
    chrootsh: toolPath(INSTALLED, "usr/sbin", "jk_chrootsh"),
    emit: (f) => out.line(json ? formatJson(f) : formatText(f)),
    verbose: values.verbose ? (line) => json ? console.error(line) : out.line(line) : () => {},
  });
  out.flush();
  return problems > 0 && !values["exit-zero"] ? 1 : 0;
}

if (import.meta.main) await runMain("jk_check", () => main(Deno.args));
