/**
 * jk_lsh — the limited shell. `jk_lsh [anything…] -c "COMMAND"` runs COMMAND
 * if, and only if, jk_lsh.ini allows it; it never starts an interactive
 * session. It runs as the user (normally inside a jail, started by
 * jk_chrootsh), unprivileged and without FFI.
 *
 * Order of operations (exit code in brackets), jailkit 2.23 §1.2 plus:
 * 1. user by `USER` (its uid must be the real uid) or by uid, from
 *    /etc/passwd [2]; primary group from /etc/group [3];
 * 2. `-c COMMAND` must be the last two arguments, COMMAND not blank [7];
 * 3. the ini: missing, unreadable, not root-owned, group/world-writable or
 *    malformed [1]; no `[user]`, `[group g]` or `[DEFAULT]` section [3];
 *    no `executables` [5];
 * 4. umask (default 022) and a clean environment (src/lsh/policy.ts);
 * 5. COMMAND split by src/lsh/tokens.ts: control characters, non-UTF-8, over
 *    32 KiB, shell operators, substitutions, expansion when not enabled [6];
 * 6. the program resolved and compared with `executables`, then with the
 *    build's `--allow-run` fence, then its arguments checked against its
 *    grammar (src/lsh/grammar.ts) [4];
 * 7. the program runs with the rebuilt arguments; its exit status is jk_lsh's,
 *    and a program killed by a signal kills jk_lsh with the same signal.
 *    It cannot be started [255].
 *
 * Logging: syslog (auth) through `lshLogSocket(INSTALLED)`, a symlink to the
 * log socket; Deno refuses `/dev/log` itself short of `--allow-all`. Every
 * refusal also goes to stderr, which sshd passes to the client.
 *
 * @module
 */

import { errorText, JkError, runMain } from "../src/errors.ts";
import { IniError, readIniFile, sectionForUser } from "../src/ini.ts";
import { checkArguments, GrammarError } from "../src/lsh/grammar.ts";
import {
  childEnvironment,
  type LshPolicy,
  policyFromSection,
  resolveProgram,
} from "../src/lsh/policy.ts";
import { type Expansion, quoteWords, TokenError, tokenize } from "../src/lsh/tokens.ts";
import { type GroupEntry, parseGroup, parsePasswd, type PasswdEntry } from "../src/passwd.ts";
import { iniPath, INSTALLED, lshLogSocket } from "../src/site.ts";
// syslog_core, not syslog: the login path loads neither src/libc.ts nor src/tools.ts.
import {
  DenoTransport,
  LOG_AUTH,
  LOG_ERR,
  LOG_INFO,
  LOG_WARNING,
  openLog,
  sanitize,
  type Syslog,
} from "../src/syslog_core.ts";

/** Exit codes, as jailkit's jk_lsh. */
const EXIT_CONFIG = 1, EXIT_USER = 2, EXIT_GROUP = 3, EXIT_NOT_ALLOWED = 4;
const EXIT_SYNTAX = 6, EXIT_INTERACTIVE = 7, EXIT_EXEC = 255;

/** Signals passed on to the running program (sshd's session signals, a terminal's). */
const FORWARDED: readonly Deno.Signal[] = [
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGTERM",
  "SIGUSR1",
  "SIGUSR2",
];

/** Who is running jk_lsh. */
interface Caller {
  user: PasswdEntry;
  group: GroupEntry;
}

type Log = Syslog<Promise<void>>;

/** Reads a passwd-format file, or fails with `code`. */
function readAccounts(path: string, code: number): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    throw new JkError(`cannot read ${path}: ${errorText(e)}`, code);
  }
}

/** Step 1: the account, as jailkit finds it (USER may pick among accounts sharing the uid). */
function identify(): Caller {
  const uid = Deno.uid()!, gid = Deno.gid()!;
  const users = parsePasswd(readAccounts("/etc/passwd", EXIT_USER)).entries;
  const named = Deno.env.get("USER");
  let user: PasswdEntry | undefined;
  if (named) {
    user = users.find((u) => u.name === named);
    if (!user) throw new JkError(`cannot find user info for USER ${named}`, EXIT_USER);
    if (user.uid !== uid) {
      throw new JkError(
        `abort, running as UID ${uid}, but environment variable USER ${named} has UID ${user.uid}`,
        EXIT_USER,
      );
    }
  } else {
    user = users.find((u) => u.uid === uid);
    if (!user) throw new JkError(`cannot find user info for uid ${uid}`, EXIT_USER);
  }
  const group = parseGroup(readAccounts("/etc/group", EXIT_GROUP)).entries
    .find((g) => g.gid === gid);
  if (!group) throw new JkError(`cannot find group name for gid ${gid}`, EXIT_GROUP);
  return { user, group };
}

/** Step 3: the section of the ini that applies to the caller. */
async function loadPolicy(caller: Caller): Promise<LshPolicy> {
  const file = iniPath(INSTALLED, "jk_lsh");
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(file);
  } catch {
    throw new JkError(`configfile ${file} is not available`, EXIT_CONFIG);
  }
  // jailkit checked nothing; a policy the user could rewrite would be no policy.
  if (info.uid !== 0 || (info.mode! & 0o022) !== 0) {
    throw new JkError(
      `configfile ${file} must be owned by root and not writable by group or others`,
      EXIT_CONFIG,
    );
  }
  let ini;
  try {
    ini = await readIniFile(file);
  } catch (e) {
    if (e instanceof IniError) throw new JkError(e.message, EXIT_CONFIG);
    throw e;
  }
  // jailkit looks at the primary group only.
  const section = sectionForUser(ini, caller.user.name, [caller.group.name]);
  if (!section) {
    throw new JkError(
      `did neither find a section '${caller.user.name}', nor 'group ${caller.group.name}' ` +
        `nor 'DEFAULT' in configfile ${file}`,
      EXIT_GROUP,
    );
  }
  try {
    return policyFromSection(section);
  } catch (e) {
    if (e instanceof IniError) throw new JkError(e.message, EXIT_CONFIG);
    throw e;
  }
}

/** `~` is the passwd home (not HOME, which the program gets as `/`); `$NAME` the clean env. */
function expansionFor(caller: Caller, env: Record<string, string>): Expansion {
  const users = () => parsePasswd(readAccounts("/etc/passwd", EXIT_USER)).entries;
  return {
    variable: (name) => Object.hasOwn(env, name) ? env[name] : undefined,
    home: (name) => name === "" ? caller.user.home : users().find((u) => u.name === name)?.home,
  };
}

function canRun(path: string): boolean {
  return Deno.permissions.querySync({ name: "run", command: path }).state === "granted";
}

function isRegularFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Step 6: the program to run and its checked arguments. */
function choose(
  words: string[],
  policy: LshPolicy,
  who: string,
): { program: string; args: string[] } {
  const shown = quoteWords(words);
  const refuse = (why: string) =>
    new JkError(
      `WARNING: ${who} tried to run '${shown}', which is not allowed ${why}`,
      EXIT_NOT_ALLOWED,
    );
  const resolved = resolveProgram(words[0], policy.paths, isRegularFile, canRun);
  if (!resolved.found) {
    // Say so when the ini allows a program that this build can never start.
    const wanted = words[0].startsWith("/")
      ? words[0]
      : policy.paths.map((d) => `${d === "/" ? "" : d}/${words[0]}`)
        .find((p) => policy.executables.includes(p));
    if (wanted && policy.executables.includes(wanted) && !canRun(wanted)) {
      throw refuse(
        `by this build of jk_lsh: ${policy.file} allows ${wanted}, but it is outside the ` +
          `build's --allow-run fence; add it to config/jk_lsh.ini in the jailkit sources ` +
          `and reinstall`,
      );
    }
    throw refuse(`according to ${policy.file}`);
  }
  if (!policy.executables.includes(resolved.path)) throw refuse(`according to ${policy.file}`);
  try {
    return {
      program: resolved.path,
      args: checkArguments(resolved.path, words, { sftpServerFlags: policy.sftpServerFlags }),
    };
  } catch (e) {
    if (e instanceof GrammarError) throw refuse(`(${e.message})`);
    throw e;
  }
}

/** Step 7: runs the program, passing signals on; returns its exit code or re-raises its signal. */
async function execute(
  program: string,
  args: string[],
  env: Record<string, string>,
  log: Log,
  who: string,
): Promise<number> {
  // Listen before spawning: a signal that arrives while the program starts is
  // passed on as soon as it exists, rather than killing jk_lsh and orphaning it.
  let child: Deno.ChildProcess | undefined;
  const pending: Deno.Signal[] = [];
  const deliver = (signal: Deno.Signal) => {
    try {
      child!.kill(signal);
    } catch {
      // already gone
    }
  };
  const forwarders = FORWARDED.map((signal) => {
    const forward = () => child ? deliver(signal) : pending.push(signal);
    Deno.addSignalListener(signal, forward);
    return () => Deno.removeSignalListener(signal, forward);
  });
  try {
    child = new Deno.Command(program, {
      args,
      clearEnv: true,
      env,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    for (const remove of forwarders) remove();
    await log.log(LOG_ERR, `WARNING: running ${program} failed for ${who}: ${errorText(e)}`);
    throw new JkError(`WARNING: check the permissions and libraries for ${program}`, EXIT_EXEC);
  }
  for (const signal of pending) deliver(signal);
  const status = await child.status;
  for (const remove of forwarders) remove();
  if (status.signal) {
    // Die of the same signal, as a shell does. Deno ignores SIGPIPE, so that one
    // (and any other that does not kill) ends in the exit code 128 + n instead.
    await log.close();
    Deno.kill(Deno.pid, status.signal);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return status.code;
}

/** Everything but the exit: returns the exit code. */
async function lsh(args: string[], log: Log): Promise<number> {
  await log.log(LOG_INFO, "jk_lsh started");
  const caller = identify();
  const who = `user ${caller.user.name} (${caller.user.uid})`;
  if (args.length < 2 || args[args.length - 2] !== "-c" || args[args.length - 1].trim() === "") {
    throw new JkError(
      `WARNING: ${who} tried to get an interactive shell session (${
        sanitize(["jk_lsh", ...args].join(" "))
      }), which is never allowed by jk_lsh`,
      EXIT_INTERACTIVE,
    );
  }
  const command = args[args.length - 1];
  const policy = await loadPolicy(caller);
  const unreachable = policy.executables.filter((p) => !canRun(p));
  if (unreachable.length > 0) {
    await log.log(
      LOG_WARNING,
      `section ${policy.section} of ${policy.file} allows ${unreachable.join(", ")}, outside ` +
        `this build's --allow-run fence: jk_lsh can never start ${
          unreachable.length > 1 ? "them" : "it"
        }`,
    );
  }
  Deno.umask(policy.umask);
  const env = childEnvironment(caller.user.name, policy.environment);

  let words: string[];
  try {
    words = tokenize(command, {
      expansion: policy.wordExpansion ? expansionFor(caller, env) : undefined,
    });
  } catch (e) {
    if (e instanceof TokenError) throw new JkError(`${who}: ${e.message}`, EXIT_SYNTAX);
    throw e;
  }
  if (words.length === 0) {
    throw new JkError(`${who}: empty command`, EXIT_INTERACTIVE);
  }
  const { program, args: programArgs } = choose(words, policy, who);
  await log.log(
    LOG_INFO,
    `executing command '${quoteWords([program, ...programArgs])}' for ${who}`,
  );
  return await execute(program, programArgs, env, log, who);
}

if (import.meta.main) {
  await runMain("jk_lsh", async () => {
    const log = openLog("jk_lsh", LOG_AUTH, new DenoTransport(lshLogSocket(INSTALLED), 0));
    try {
      return await lsh(Deno.args, log);
    } catch (e) {
      if (e instanceof JkError) await log.log(LOG_ERR, e.message);
      throw e;
    } finally {
      await log.close();
    }
  });
}
