/**
 * jk_cp: copy files into a jail at the same path, with their libraries
 * (jailkit behaviour §1.8; the copy engine is src/jailcopy.ts).
 *
 * Differences from jailkit 2.23's jk_cp:
 * - `--jail=JAIL` works (jailkit's long option took no argument).
 * - A name that cannot be found is an error (exit 4), not silently dropped; a
 *   name with a `/` is taken relative to the working directory, not PATH.
 * - `-k` never links a setuid/setgid file (nor one a copy would give another
 *   owner): a hard link shares the host inode, setuid-root bit included.
 * - `-f` replaces only files that differ, atomically.
 * - Errors while copying give exit 7 (jailkit always exited 0).
 * - No `ldconfig -r JAIL` afterwards (see src/jailcopy.ts).
 *
 * @module
 */

import { resolve } from "./paths.ts";
import { JkError, parseCommandLine, runMain } from "./cli.ts";
import { consoleReporter, CopyEngine, resolveProgram } from "./jailcopy.ts";
import { hostLstat, Jail, UNSAFE_EXIT } from "./jailfs.ts";
import { checkJail } from "./jailsafety.ts";
import { geteuid } from "./libc.ts";

/**
 * Exit codes of jk_cp (0 to 6 as jailkit's; 7 is ours).
 *
 * @example
 * ```ts
 * if (jkCp(args, context) === EXIT.copyFailed) console.error("some files were not copied");
 * ```
 */
export const EXIT = {
  ok: 0,
  usage: 1,
  missingArguments: 2,
  jailNotDirectory: 3,
  fileMissing: 4,
  notRoot: 5,
  unsafe: UNSAFE_EXIT,
  copyFailed: 7,
} as const;

const USAGE = `Usage: jk_cp -j JAIL [-v] [-f] [-k] [-o] [-s] FILE...
       jk_cp [OPTIONS] JAIL FILE...
Copy files into a jail at the same path, with the libraries of every program
and the interpreter of every script. Directories are copied recursively.

  -j, --jail=JAIL  the jail directory
  -v, --verbose    say what is done
  -f, --force      replace files in the jail that differ from the host
  -k, --hardlink   hard-link files instead of copying them; setuid/setgid files
                   and files not owned by root are still copied
  -o, --owner      keep the owner and group of the files
  -s, --setuid     keep setuid and setgid bits (they are removed otherwise)
  -h, --help       show this help

A FILE that is a bare name is looked up in PATH; a name with a "/" is taken
relative to the current directory.

Exit status: 0 all copied; 1 bad option; 2 no jail or no file given; 3 the
jail is not a directory; 4 a file does not exist; 5 not run by root; 6 the
jail is not safe, or a symlink in it leads out of it; 7 some files could not
be copied (each is named on stderr).`;

const OPTIONS = {
  jail: { type: "string", short: "j" },
  verbose: { type: "boolean", short: "v" },
  force: { type: "boolean", short: "f" },
  hardlink: { type: "boolean", short: "k" },
  owner: { type: "boolean", short: "o" },
  setuid: { type: "boolean", short: "s" },
  help: { type: "boolean", short: "h" },
} as const;

/** What jk_cp needs from its surroundings (tests pass their own). */
export interface CpContext {
  /** The caller's PATH, for bare names. */
  path: string;
  /** The working directory, for relative names and a relative jail. */
  cwd: string;
}

/**
 * Entry point: parses `args`, copies, returns the exit code (see `EXIT`).
 *
 * @example
 * ```ts
 * jkCp(["-j", "/srv/jail", "rsync"], { path: "/usr/bin:/bin", cwd: "/root" }); // 0
 * ```
 */
export function jkCp(args: string[], context: CpContext): number {
  if (args.includes("-?")) args = ["--help"]; // jailkit's getopt accepted -? for help
  const { values, positionals } = parseCommandLine(args, OPTIONS, { usageExit: EXIT.usage });
  if (values.help) {
    console.log(USAGE);
    return EXIT.ok;
  }
  if (geteuid() !== 0) throw new JkError("cannot run without root privileges", EXIT.notRoot);

  let jailArg = values.jail as string | undefined;
  let names = positionals;
  if (jailArg === undefined) [jailArg, ...names] = positionals;
  if (!jailArg || names.length === 0) {
    throw new JkError(
      "need at least a jail directory and a file to copy; try --help",
      EXIT.missingArguments,
    );
  }
  const jailPath = resolve(context.cwd, jailArg);
  const info = hostLstat(jailPath);
  if (info?.type === "symlink") {
    throw new JkError(`${jailPath} is a symlink, please point to the real directory`, EXIT.unsafe);
  }
  if (info?.type !== "dir") {
    throw new JkError(`${jailPath} is not a directory`, EXIT.jailNotDirectory);
  }
  const files: string[] = [];
  for (const name of names) {
    const file = resolveProgram(name, context.path, context.cwd);
    if (file === null || !hostLstat(file)) {
      throw new JkError(`${file ?? name} does not exist`, EXIT.fileMissing);
    }
    files.push(file);
  }
  const findings = checkJail(jailPath);
  if (findings.length > 0) {
    throw new JkError(
      `jail ${jailPath} is not safe: ${findings.map((f) => f.message).join("; ")}`,
      EXIT.unsafe,
    );
  }

  const jail = Jail.open(jailPath);
  const reporter = consoleReporter("jk_cp");
  try {
    const engine = new CopyEngine(jail, { reporter, verbose: values.verbose === true });
    engine.copySync(files, {
      force: values.force === true,
      hardlink: values.hardlink === true,
      keepOwner: values.owner === true,
      keepSetuid: values.setuid === true,
    });
    return engine.errors.length > 0 ? EXIT.copyFailed : EXIT.ok;
  } finally {
    reporter.flush();
    jail.close();
  }
}

if (import.meta.main) {
  await runMain("jk_cp", () =>
    jkCp(Deno.args, {
      path: Deno.env.get("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      cwd: Deno.cwd(),
    }));
}
