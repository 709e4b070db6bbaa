/**
 * jk_list — list processes whose root directory is not `/`.
 *
 * `jk_list [-w] [-j JAIL]`
 *
 * For every process it can inspect it prints pid, owner, jail (the target of
 * /proc/PID/root) and command (executable and arguments), sorted by jail, in
 * jailkit 2.23's layout. Differences from jailkit, on purpose:
 * - `-j JAIL` filters (jailkit parses it and ignores it);
 * - a process that vanishes or cannot be read is skipped, and the rest is still
 *   listed (jailkit stops the whole scan at the first error);
 * - an owner uid without a passwd entry is shown as the number (jailkit crashes).
 *
 * Exit codes: 0 listed (also when nothing is jailed), 1 /proc unreadable, 2 usage.
 *
 * @module
 */

import { JkError, parseCommandLine, runMain } from "./cli.ts";
import { parsePasswd } from "./passwd.ts";

/** One jailed process. */
export interface JailedProcess {
  pid: number;
  uid: number;
  user: string;
  /** Target of /proc/PID/root; may end in " (deleted)". */
  jail: string;
  /** Target of /proc/PID/exe, or "" when unreadable. */
  exe: string;
  /** Arguments after argv[0], space-joined, from the first 4096 bytes of cmdline. */
  args: string;
}

const USAGE = `jk_list, lists processes running in a chroot jail
Usage: jk_list [-w] [-j JAIL]
  -h --help         print this message
  -j --jail=/path   list only processes in this jail
  -w --wide         print wide listing`;

/** Reads a link, or `null` when the process is gone or hidden from us. */
function readLink(path: string): string | null {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return null;
  }
}

/** The arguments after argv[0] of a process (jailkit reads at most 4096 bytes). */
function commandArgs(pid: number): string {
  try {
    using file = Deno.openSync(`/proc/${pid}/cmdline`);
    const buf = new Uint8Array(4096);
    const n = file.readSync(buf) ?? 0;
    const text = new TextDecoder().decode(buf.subarray(0, n));
    return text.split("\0").slice(1).join(" ");
  } catch {
    return "";
  }
}

/**
 * Scans /proc for processes with a root other than `/`. Processes that vanish
 * or cannot be read are skipped.
 *
 * @example
 * ```ts
 * for (const p of scanJailedProcesses("/proc", new Map([[0, "root"]]))) console.log(p.pid, p.jail);
 * ```
 */
export function scanJailedProcesses(proc: string, users: Map<number, string>): JailedProcess[] {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(proc)];
  } catch (e) {
    throw new JkError(`cannot read ${proc}: ${e instanceof Error ? e.message : e}`);
  }
  const found: JailedProcess[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    const jail = readLink(`${proc}/${pid}/root`);
    if (jail === null || jail === "/") continue;
    let uid: number;
    try {
      uid = Deno.statSync(`${proc}/${pid}`).uid ?? -1;
    } catch {
      continue;
    }
    const exe = readLink(`${proc}/${pid}/exe`) ?? "";
    found.push({
      pid,
      uid,
      user: users.get(uid) ?? String(uid),
      jail,
      exe,
      args: commandArgs(pid),
    });
  }
  return found;
}

/**
 * Formats processes as jailkit does: sorted by jail, columns sized to the
 * longest user and jail, the command cut to 80 columns unless `wide`.
 *
 * @example
 * ```ts
 * formatListing([{ pid: 7, uid: 0, user: "root", jail: "/srv/j", exe: "/bin/sh", args: "" }], false);
 * ```
 */
export function formatListing(processes: JailedProcess[], wide: boolean): string {
  if (processes.length === 0) return "No jailed processes found";
  const sorted = [...processes].sort((a, b) =>
    a.jail < b.jail ? -1 : a.jail > b.jail ? 1 : a.pid - b.pid
  );
  const command = (p: JailedProcess) => `${p.exe} ${p.args}`;
  const userWidth = Math.max(4, ...sorted.map((p) => p.user.length));
  const jailWidth = Math.max(4, ...sorted.map((p) => p.jail.length));
  let cmdWidth = Math.max(7, ...sorted.map((p) => command(p).length));
  const narrow = Math.min(cmdWidth, 80 - 5 - userWidth - jailWidth - 4);
  if (!wide) cmdWidth = narrow;
  const row = (pid: string, user: string, jail: string, cmd: string, width: number) =>
    [
      pid.padEnd(6),
      user.slice(0, userWidth).padEnd(userWidth),
      jail.slice(0, jailWidth).padEnd(jailWidth),
      cmd.slice(0, Math.max(width, 0)).padEnd(Math.max(width, 0)),
    ].join(" ");
  const lines = [row("Pid", "User", "Jail", "Command", narrow)];
  for (const p of sorted) {
    const width = wide ? command(p).length : cmdWidth;
    lines.push(row(String(p.pid), p.user, p.jail, command(p), width));
  }
  return lines.map((l) => l.trimEnd()).join("\n");
}

/** Whether a process root lies in `jail` (the jail itself or below it). */
function inJail(root: string, jail: string): boolean {
  const j = jail.replace(/\/+$/, "");
  const r = root.replace(/ \(deleted\)$/, "");
  return r === j || r.startsWith(j + "/");
}

/** Host user names by uid, read from /etc/passwd (no NSS needed to list). */
function hostUsers(): Map<number, string> {
  const users = new Map<number, string>();
  try {
    for (const e of parsePasswd(Deno.readTextFileSync("/etc/passwd")).entries) {
      if (!users.has(e.uid)) users.set(e.uid, e.name);
    }
  } catch {
    // Without /etc/passwd the listing shows numeric owners.
  }
  return users;
}

/** Entry point: parses `args`, lists, returns the exit code. */
export function jkList(args: string[]): number {
  const { values, positionals } = parseCommandLine(args, {
    wide: { type: "boolean", short: "w" },
    jail: { type: "string", short: "j" },
    help: { type: "boolean", short: "h" },
  }, { usageExit: 2 });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    throw new JkError(`unexpected argument: ${positionals[0]}; try --help`, 2);
  }
  const jail = values.jail as string | undefined;
  if (jail !== undefined && !jail.startsWith("/")) {
    throw new JkError(`jail must be an absolute path: ${jail}`, 2);
  }
  let processes = scanJailedProcesses("/proc", hostUsers());
  if (jail !== undefined) processes = processes.filter((p) => inJail(p.jail, jail));
  console.log(formatListing(processes, !!values.wide));
  return 0;
}

if (import.meta.main) await runMain("jk_list", () => jkList(Deno.args));
