/**
 * passwd(5) and group(5) files: parsing, lookups and line formatting.
 *
 * Used for files read directly — a jail's `etc/passwd`, the host's `/etc/passwd`
 * when listing processes — never through NSS. (Privileged tools resolve the
 * *host* user through libc's getpwuid before chroot; see src/libc.ts.)
 * Malformed lines are kept aside with their line numbers instead of throwing,
 * so a tool can report them and go on.
 *
 * @module
 */

/** One line of a passwd file. */
export interface PasswdEntry {
  name: string;
  password: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
  /** 1-based line number in the file. */
  line: number;
}

/** One line of a group file. */
export interface GroupEntry {
  name: string;
  password: string;
  gid: number;
  members: string[];
  line: number;
}

/** A parsed file: its entries in file order, and the lines that did not parse. */
export interface Parsed<T> {
  entries: T[];
  malformed: { line: number; text: string }[];
}

/** A uid or gid field: decimal, no sign, below 2^32 - 1 (which means "no id"). */
function parseId(field: string): number | null {
  if (!/^\d{1,10}$/.test(field)) return null;
  const n = Number(field);
  return n < 0xffffffff ? n : null;
}

function parseLines<T>(
  text: string,
  fields: number,
  build: (f: string[], line: number) => T | null,
) {
  const result: Parsed<T> = { entries: [], malformed: [] };
  text.split("\n").forEach((raw, i) => {
    const text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (text === "" || text.startsWith("#")) return;
    const f = text.split(":");
    const entry = f.length === fields ? build(f, i + 1) : null;
    if (entry) result.entries.push(entry);
    else result.malformed.push({ line: i + 1, text });
  });
  return result;
}

/**
 * Parses passwd(5) text. A line needs seven fields, numeric ids and a name.
 *
 * @example
 * ```ts
 * const { entries } = parsePasswd("root:x:0:0:root:/root:/bin/bash\n");
 * entries[0].shell; // "/bin/bash"
 * ```
 */
export function parsePasswd(text: string): Parsed<PasswdEntry> {
  return parseLines(text, 7, (f, line) => {
    const uid = parseId(f[2]), gid = parseId(f[3]);
    if (f[0] === "" || uid === null || gid === null) return null;
    return { name: f[0], password: f[1], uid, gid, gecos: f[4], home: f[5], shell: f[6], line };
  });
}

/**
 * Parses group(5) text. Members are the comma list of the fourth field.
 *
 * @example
 * ```ts
 * parseGroup("sftp:x:1001:alice,bob\n").entries[0].members; // ["alice", "bob"]
 * ```
 */
export function parseGroup(text: string): Parsed<GroupEntry> {
  return parseLines(text, 4, (f, line) => {
    const gid = parseId(f[2]);
    if (f[0] === "" || gid === null) return null;
    const members = f[3].split(",").map((m) => m.trim()).filter((m) => m !== "");
    return { name: f[0], password: f[1], gid, members, line };
  });
}

/**
 * Formats a passwd line (without newline). Refuses fields that would break
 * the file: a `:` or a newline in any field.
 *
 * @example
 * ```ts
 * passwdLine({ name: "u", password: "x", uid: 1000, gid: 1000, gecos: "", home: "/home/u", shell: "/bin/sh" });
 * // "u:x:1000:1000::/home/u:/bin/sh"
 * ```
 */
export function passwdLine(e: Omit<PasswdEntry, "line">): string {
  const fields = [e.name, e.password, String(e.uid), String(e.gid), e.gecos, e.home, e.shell];
  checkFields(fields);
  return fields.join(":");
}

/**
 * Formats a group line (without newline).
 *
 * @example
 * ```ts
 * groupLine({ name: "sftp", password: "x", gid: 1001, members: ["alice"] }); // "sftp:x:1001:alice"
 * ```
 */
export function groupLine(e: Omit<GroupEntry, "line">): string {
  const fields = [e.name, e.password, String(e.gid), e.members.join(",")];
  checkFields(fields);
  return fields.join(":");
}

/**
 * Appends lines to the bytes of a passwd or group file, adding the missing
 * final newline first. The existing bytes are kept exactly (a GECOS field in
 * Latin-1 survives).
 *
 * @example
 * ```ts
 * const text = new TextEncoder().encode("root:x:0:0::/root:/bin/sh");
 * new TextDecoder().decode(appendLines(text, ["bin:x:2:2::/bin:/bin/false"]));
 * // "root:x:0:0::/root:/bin/sh\nbin:x:2:2::/bin:/bin/false\n"
 * ```
 */
export function appendLines(existing: Uint8Array, lines: readonly string[]): Uint8Array {
  const newline = existing.length > 0 && existing[existing.length - 1] !== 0x0a ? "\n" : "";
  const tail = new TextEncoder().encode(newline + lines.map((l) => l + "\n").join(""));
  const out = new Uint8Array(existing.length + tail.length);
  out.set(existing);
  out.set(tail, existing.length);
  return out;
}

function checkFields(fields: string[]): void {
  for (const f of fields) {
    if (/[:\n\r\0]/.test(f)) {
      throw new Error(`field contains ':' or a line break: ${JSON.stringify(f)}`);
    }
  }
}

/**
 * Reads and parses a passwd file; `null` when it does not exist.
 *
 * @example
 * ```ts
 * const jailUsers = await readPasswdFile("/srv/jail/etc/passwd");
 * ```
 */
export async function readPasswdFile(path: string): Promise<Parsed<PasswdEntry> | null> {
  const text = await readOptional(path);
  return text === null ? null : parsePasswd(text);
}

/**
 * Reads and parses a group file; `null` when it does not exist.
 *
 * @example
 * ```ts
 * const jailGroups = await readGroupFile("/srv/jail/etc/group");
 * ```
 */
export async function readGroupFile(path: string): Promise<Parsed<GroupEntry> | null> {
  const text = await readOptional(path);
  return text === null ? null : parseGroup(text);
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}
