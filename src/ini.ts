/**
 * The one INI parser of every jailkit tool, for both of jailkit's dialects: the
 * C tools' files (`jk_chrootsh.ini`, `jk_lsh.ini`, `jk_uchroot.ini`,
 * `jk_socketd.ini`) and the Python tools' files (`jk_init.ini`, `jk_check.ini`,
 * `jk_update.ini`).
 *
 * The syntax is the common subset of the two, read strictly:
 * - `[name]` starts a section; the name is trimmed and case-sensitive
 *   (`[group users]`, `[DEFAULT]`, `[/home/jail/dev/log]`). A `#` or `;`
 *   comment may follow the `]`; any other trailing text is an error.
 * - `key = value` or `key: value` (the first `=` or `:` splits). Keys are
 *   ASCII letters, digits, `_`, `.`, `-`, and are lower-cased.
 * - Lines whose first non-blank character is `#` or `;` are comments.
 * - A line indented deeper than the key line above it continues that value,
 *   joined with a newline, as Python's configparser does; comments and blank
 *   lines in between are allowed.
 * - Duplicate sections, duplicate keys within a section, a key before any
 *   section and any other kind of line are errors naming `file:line`.
 * - Input must be UTF-8 text without NUL or other control characters (tab,
 *   LF and CRLF line ends excepted), at most {@link MAX_INI_BYTES} long.
 *
 * Where this parser deliberately differs from jailkit 2.23's C parser (§2.1)
 * and its Python `configparser` (§2.2):
 *
 * - **Key matching.** C: a key *prefix* followed by `=` matches, so
 *   `relax_home_group=1` also sets `relax_home_group_permissions`. Ours: exact.
 * - **Key case and shape.** C: case-sensitive, blanks inside a key ignored
 *   (`exec utables`). Python: lower-cased, anything goes. Ours: lower-cased,
 *   `[A-Za-z0-9_.-]` only, anything else is an error.
 * - **Delimiter.** C: `=` only. Python and ours: `=` or `:`, the first one wins.
 * - **Comments.** C: `#` in column 1 only. Python and ours: `#` or `;`, indented or not.
 * - **Inline `# text` after a value.** Kept in the value by both, and by ours.
 * - **Values.** C: verbatim after `=`, leading blanks and a CRLF's CR kept
 *   (`injail_shell = /bin/sh` fails). Python and ours: trimmed; ours trims
 *   spaces and tabs only, and reads CRLF as LF.
 * - **Last line without newline.** C: the value gets a stray `0xFF`. Ours: intact.
 * - **`[` in a value or an indented comment.** C: starts a pseudo-section. Ours: text.
 * - **Section names.** Both: exact and untrimmed. Ours: exact but trimmed, so
 *   `[ alice ]` is `alice`; `[group  users]` (two spaces) is still not `group users`.
 * - **Duplicate sections or keys.** C: the first wins silently. Python: traceback.
 *   Ours: an error naming both lines.
 * - **Continuation lines.** C: none. Python and ours: a line indented deeper than
 *   its key continues the value; ours refuses an indented `[section]` there,
 *   which Python folded into the value.
 * - **`[DEFAULT]`.** C: a plain last-resort section. Python: inherited by every
 *   section. Ours: a plain section, never merged; the tool decides.
 * - **Empty value.** C: "not set". Python: `""`. Ours: accessors treat it as not set.
 * - **Booleans.** C: any non-zero integer, `yes` silently gives the default.
 *   Python (jk_init): any non-empty string, so `0` is true. Ours:
 *   `1/0 yes/no true/false on/off`, anything else is an error.
 * - **Bad numbers.** C: silently the default. Python: traceback. Ours: an error
 *   naming `file:line`.
 * - **`%`.** C: literal. Python: `%%` is `%`, `%(x)s` interpolates, a lone `%`
 *   crashes. Ours: literal; with `pythonPercent` `%%` is `%` and `%(` is an error.
 * - **Lists.** Both: comma split, items trimmed. Ours also splits on continuation
 *   line breaks: `paths = a\n    b` gives `[a, b]` where Python gave `["a\nb"]`.
 * - **Size.** C: fixed buffers that overflow. Ours: any line length within the
 *   1 MiB file limit.
 *
 * @module
 */

import { errorText, JkError } from "./errors.ts";

/** Largest ini file accepted, in bytes (1 MiB); jailkit's own files are a few KiB. */
export const MAX_INI_BYTES = 1024 * 1024;

/** Why an {@link IniError} was thrown; tools treat `"missing"` differently (e.g. defaults). */
export type IniErrorReason =
  | "missing"
  | "unreadable"
  | "too-large"
  | "not-text"
  | "syntax"
  | "value";

/**
 * A problem with an ini file. The message is one line starting with
 * `file:line:` (or `file:` when no line applies), so `runMain` prints it as is.
 *
 * @example
 * ```ts
 * try {
 *   ini = await readIniFile("/etc/jailkit/jk_lsh.ini");
 * } catch (e) {
 *   if (e instanceof IniError && e.reason === "missing") throw new JkError(e.message, 1);
 *   throw e;
 * }
 * ```
 */
export class IniError extends JkError {
  /**
   * @param message the full one-line message, already prefixed with `file:line:`
   * @param reason what kind of problem it is
   * @param file the ini file concerned
   * @param line 1-based line number, when the problem has one
   * @param exitCode exit code for `runMain` (default 1)
   */
  constructor(
    message: string,
    readonly reason: IniErrorReason,
    readonly file: string,
    readonly line?: number,
    exitCode = 1,
  ) {
    super(message, exitCode);
    this.name = "IniError";
  }
}

/** One `key = value` of a section, with the line the key is on. */
export interface IniEntry {
  /** Lower-cased key. */
  readonly key: string;
  /** Trimmed value; continuation lines are joined with `\n`. */
  readonly value: string;
  /** 1-based line number of the key. */
  readonly line: number;
}

/** Bounds for {@link IniSection.int} and {@link IniSection.float}. */
export interface NumberBounds {
  /** Smallest accepted value (inclusive). */
  min?: number;
  /** Largest accepted value (inclusive). */
  max?: number;
}

/** Options of {@link parseIni} and {@link readIniFile}. */
export interface ParseOptions {
  /**
   * Read `%` as Python's configparser did, for files written for jailkit's
   * Python tools (jk_init, jk_check, jk_update): `%%` means a literal `%`, and
   * `%(name)s` interpolation is refused with an error rather than expanded.
   * A `%` followed by anything else is kept. Default `false`: `%` is always
   * literal, as in jailkit's C tools.
   */
  pythonPercent?: boolean;
}

const TRUE_WORDS = new Set(["1", "yes", "true", "on"]);
const FALSE_WORDS = new Set(["0", "no", "false", "off"]);
// Checked before lower-casing: "\u212A" (Kelvin sign) lower-cases to an ASCII "k".
const KEY_PATTERN = /^[A-Za-z0-9_.-]+$/;
const DECIMAL_PATTERN = /^[+-]?[0-9]+$/;
const OCTAL_PATTERN = /^[0-7]+$/;
// No nested quantifiers over overlapping characters: linear on any input.
const FLOAT_PATTERN = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
// C0 controls except tab (09), LF (0a) and CR (0d, handled separately), and DEL.
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_PATTERN = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/;

/** Quotes text for a one-line message: JSON escapes, long text shortened. */
function quote(text: string): string {
  const limit = 80;
  return JSON.stringify(text.length > limit ? text.slice(0, limit) + "…" : text);
}

/** Trims spaces and tabs only: jailkit trims with C `isspace`, never Unicode blanks. */
function trimBlanks(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === " " || text[start] === "\t")) start++;
  while (end > start && (text[end - 1] === " " || text[end - 1] === "\t")) end--;
  return text.slice(start, end);
}

/** Number of leading spaces and tabs. */
function indentOf(line: string): number {
  let n = 0;
  while (n < line.length && (line[n] === " " || line[n] === "\t")) n++;
  return n;
}

/**
 * One section of an ini file: its keys in file order, with typed accessors.
 * Every accessor takes a default used when the key is absent or its value is
 * empty; a present value that does not parse throws an {@link IniError}
 * naming `file:line`, the key and the section.
 *
 * @example
 * ```ts
 * const lsh = ini.section("alice");
 * const allowed = lsh?.list("executables") ?? [];
 * const umask = lsh?.octal("umask", 0o022) ?? 0o022;
 * ```
 */
export class IniSection {
  readonly #entries = new Map<string, IniEntry>();

  /**
   * @param file the file the section came from, for messages
   * @param name the trimmed section name, e.g. `group users`
   * @param line 1-based line number of the `[name]` header
   * @param entries the keys in file order (lower-cased, unique)
   */
  constructor(
    readonly file: string,
    readonly name: string,
    readonly line: number,
    entries: readonly IniEntry[],
  ) {
    for (const e of entries) {
      this.#entries.set(e.key, Object.freeze({ key: e.key, value: e.value, line: e.line }));
    }
  }

  /**
   * The entry of a key (case-insensitive), with its line number.
   *
   * @example
   * ```ts
   * const e = section.entry("umask");
   * if (e) console.log(`${section.file}:${e.line}: umask is ${e.value}`);
   * ```
   */
  entry(key: string): IniEntry | undefined {
    return this.#entries.get(key.toLowerCase());
  }

  /**
   * Whether the key is present in the file, even with an empty value.
   *
   * @example
   * ```ts
   * if (section.has("paths")) searchPaths = section.list("paths");
   * ```
   */
  has(key: string): boolean {
    return this.#entries.has(key.toLowerCase());
  }

  /**
   * The lower-cased keys, in file order.
   *
   * @example
   * ```ts
   * for (const key of section.keys()) console.log(key);
   * ```
   */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  /**
   * The trimmed value of a key, otherwise verbatim; `fallback` when the key is
   * absent or empty.
   *
   * @example
   * ```ts
   * const shell = section.get("injail_shell"); // string | undefined
   * const comment = section.get("comment", ""); // string
   * ```
   */
  get(key: string): string | undefined;
  get(key: string, fallback: string): string;
  get(key: string, fallback?: string): string | undefined {
    const value = this.entry(key)?.value;
    return value ? value : fallback;
  }

  /**
   * A comma list: split on `,` and on continuation line breaks, items trimmed,
   * empty items dropped. `fallback` (default `[]`) only when the key is absent:
   * a present empty value is an empty list.
   *
   * @example
   * ```ts
   * // paths = /usr/lib/sftp-server, , /usr/libexec/sftp-server
   * section.list("paths"); // ["/usr/lib/sftp-server", "/usr/libexec/sftp-server"]
   * ```
   */
  list(key: string, fallback: string[] = []): string[] {
    const entry = this.entry(key);
    if (!entry) return fallback;
    return entry.value.split(/[,\n]/).map(trimBlanks).filter((item) => item !== "");
  }

  /**
   * A boolean: `1/yes/true/on` or `0/no/false/off`, case-insensitive.
   *
   * @example
   * ```ts
   * const relaxOwner = section.bool("relax_home_owner", false);
   * ```
   */
  bool(key: string, fallback: boolean): boolean {
    const entry = this.#present(key);
    if (!entry) return fallback;
    const word = entry.value.toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
    throw this.#invalid(entry, "must be 1/0, yes/no, true/false or on/off");
  }

  /**
   * A decimal integer within bounds (default: 0 to `Number.MAX_SAFE_INTEGER`).
   * The fallback is returned as given, unchecked.
   *
   * @example
   * ```ts
   * const base = section.int("base", 511, { min: 1, max: 1_000_000 });
   * ```
   */
  int(key: string, fallback: number, bounds: NumberBounds = {}): number {
    const entry = this.#present(key);
    if (!entry) return fallback;
    const { min = 0, max = Number.MAX_SAFE_INTEGER } = bounds;
    const value = DECIMAL_PATTERN.test(entry.value) ? Number(entry.value) : NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw this.#invalid(entry, `must be a decimal integer from ${min} to ${max}`);
    }
    return value === 0 ? 0 : value; // never -0
  }

  /**
   * An octal mode such as a umask: `022`, `0022` and `22` all give `0o22`.
   * Digits 0–7 only, no `0o` prefix; values above `max` (default `0o777`) are refused.
   *
   * @example
   * ```ts
   * const umask = section.octal("umask", 0o022);
   * ```
   */
  octal(key: string, fallback: number, max = 0o777): number {
    const entry = this.#present(key);
    if (!entry) return fallback;
    const value = OCTAL_PATTERN.test(entry.value) ? parseInt(entry.value, 8) : NaN;
    if (!(value <= max)) {
      throw this.#invalid(entry, `must be an octal number from 0 to 0${max.toString(8)}`);
    }
    return value;
  }

  /**
   * A finite decimal number (`2`, `2.5`, `.5`, `1e3`) within optional bounds.
   *
   * @example
   * ```ts
   * const interval = section.float("interval", 5.0, { min: 0.1, max: 3600 });
   * ```
   */
  float(key: string, fallback: number, bounds: NumberBounds = {}): number {
    const entry = this.#present(key);
    if (!entry) return fallback;
    const { min = -Infinity, max = Infinity } = bounds;
    const value = FLOAT_PATTERN.test(entry.value) ? Number(entry.value) : NaN;
    if (!Number.isFinite(value) || value < min || value > max) {
      const range = min > -Infinity && max < Infinity
        ? ` from ${min} to ${max}`
        : min > -Infinity
        ? ` of at least ${min}`
        : max < Infinity
        ? ` of at most ${max}`
        : "";
      throw this.#invalid(entry, `must be a decimal number${range}`);
    }
    return value;
  }

  /** The entry if present with a non-empty value: an empty value means "not set". */
  #present(key: string): IniEntry | undefined {
    const entry = this.entry(key);
    return entry && entry.value !== "" ? entry : undefined;
  }

  #invalid(entry: IniEntry, rule: string): IniError {
    return new IniError(
      `${this.file}:${entry.line}: key "${entry.key}" in section [${this.name}] ${rule}, ` +
        `not ${quote(entry.value)}`,
      "value",
      this.file,
      entry.line,
    );
  }
}

/**
 * A parsed ini file: its sections by exact name, in file order.
 *
 * @example
 * ```ts
 * const ini = parseIni("[sftp]\npaths = /usr/lib/sftp-server\n", "jk_init.ini");
 * ini.section("sftp")?.list("paths"); // ["/usr/lib/sftp-server"]
 * ini.names(); // ["sftp"]
 * ```
 */
export class IniFile {
  readonly #sections = new Map<string, IniSection>();

  /**
   * @param file the path or name the text came from, used in every message
   * @param sections the sections in file order (unique names)
   */
  constructor(readonly file: string, sections: readonly IniSection[]) {
    for (const s of sections) this.#sections.set(s.name, s);
  }

  /**
   * The section with exactly this name (case-sensitive; give it trimmed).
   *
   * @example
   * ```ts
   * ini.section("group users"); // IniSection | undefined
   * ```
   */
  section(name: string): IniSection | undefined {
    return this.#sections.get(name);
  }

  /**
   * Whether a section with exactly this name exists.
   *
   * @example
   * ```ts
   * if (!ini.has(sectionName)) throw new JkError(`no section [${sectionName}] in ${ini.file}`);
   * ```
   */
  has(name: string): boolean {
    return this.#sections.has(name);
  }

  /**
   * Section names in file order (`DEFAULT` included, as an ordinary section).
   *
   * @example
   * ```ts
   * for (const jail of ini.names()) console.log(jail); // jk_check.ini: one section per jail
   * ```
   */
  names(): string[] {
    return [...this.#sections.keys()];
  }

  /**
   * The sections in file order.
   *
   * @example
   * ```ts
   * for (const s of ini.sections()) console.log(s.name, s.keys());
   * ```
   */
  sections(): IniSection[] {
    return [...this.#sections.values()];
  }
}

/** A key while its value may still grow by continuation lines. */
interface DraftEntry {
  key: string;
  value: string;
  line: number;
}

/** A section while it is being read. */
interface DraftSection {
  name: string;
  line: number;
  entries: Map<string, DraftEntry>;
}

/** The value being read: a key line plus any continuation lines. */
interface OpenValue {
  entry: DraftEntry;
  indent: number;
  lines: string[];
  blankLines: number;
}

/** Builds an IniError for `fileName:line`. */
type LineFailure = (line: number, message: string, reason?: IniErrorReason) => IniError;

/**
 * Parses ini text. `fileName` only labels messages. Throws {@link IniError}
 * for any input it does not accept, and nothing else.
 *
 * @example
 * ```ts
 * const ini = parseIni("[DEFAULT]\nenv = TERM, LANG\n", "/etc/jailkit/jk_chrootsh.ini");
 * ini.section("DEFAULT")?.list("env"); // ["TERM", "LANG"]
 * ```
 */
export function parseIni(text: string, fileName: string, options: ParseOptions = {}): IniFile {
  const fail: LineFailure = (line, message, reason = "syntax") =>
    new IniError(`${fileName}:${line}: ${message}`, reason, fileName, line);
  if (text.length > MAX_INI_BYTES) {
    throw new IniError(
      `${fileName}: too large (over ${MAX_INI_BYTES} bytes)`,
      "too-large",
      fileName,
    );
  }

  const sections = new Map<string, DraftSection>();
  let section: DraftSection | undefined;
  let open: OpenValue | undefined;
  const finish = (value: OpenValue) => {
    // Python kept a leading newline for `key =` followed by continuation lines.
    const joined = value.lines.join("\n").replace(/^\n+/, "");
    value.entry.value = options.pythonPercent
      ? collapsePercent(joined, value.entry.line, fail)
      : joined;
  };

  const lines = text.replace(/^\uFEFF/, "").split("\n");
  // A final "\n" ends the last line rather than starting an empty one.
  if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i];
    if (line.endsWith("\r")) line = line.slice(0, -1);
    const control = CONTROL_PATTERN.exec(line);
    if (control) {
      const code = control[0].charCodeAt(0).toString(16).padStart(2, "0");
      throw fail(lineNo, `not a text file (control character 0x${code})`, "not-text");
    }
    if (line.includes("\r")) throw fail(lineNo, "carriage return inside a line");

    const stripped = trimBlanks(line);
    if (stripped === "") {
      if (open) open.blankLines++;
      continue;
    }
    if (stripped[0] === "#" || stripped[0] === ";") continue;

    const indent = indentOf(line);
    if (open && indent > open.indent) {
      if (stripped[0] === "[" && stripped.endsWith("]")) {
        // Python would fold it into the value above and move the keys below
        // into the previous section; refuse rather than guess.
        throw fail(lineNo, `indented section header ${quote(stripped)}; remove the indentation`);
      }
      for (; open.blankLines > 0; open.blankLines--) open.lines.push("");
      open.lines.push(stripped);
      continue;
    }
    if (open) finish(open);
    open = undefined;

    if (stripped[0] === "[") {
      const name = parseHeader(stripped, lineNo, fail);
      const first = sections.get(name);
      if (first) throw fail(lineNo, `duplicate section [${name}] (first at line ${first.line})`);
      section = { name, line: lineNo, entries: new Map() };
      sections.set(name, section);
      continue;
    }

    const split = firstDelimiter(stripped);
    if (split < 0) {
      throw fail(
        lineNo,
        `expected "key = value", a [section] or a comment, not ${quote(stripped)}`,
      );
    }
    const rawKey = trimBlanks(stripped.slice(0, split));
    const key = rawKey.toLowerCase();
    if (key === "") throw fail(lineNo, `missing key before "${stripped[split]}"`);
    if (!KEY_PATTERN.test(rawKey)) {
      throw fail(lineNo, `invalid key ${quote(rawKey)} (letters, digits, "_", ".", "-" only)`);
    }
    if (!section) throw fail(lineNo, `key "${key}" before any [section]`);
    const first = section.entries.get(key);
    if (first) {
      throw fail(
        lineNo,
        `duplicate key "${key}" in section [${section.name}] (first at line ${first.line})`,
      );
    }
    const entry = { key, value: "", line: lineNo };
    section.entries.set(key, entry);
    open = { entry, indent, lines: [trimBlanks(stripped.slice(split + 1))], blankLines: 0 };
  }
  if (open) finish(open);

  return new IniFile(
    fileName,
    [...sections.values()].map((s) =>
      new IniSection(fileName, s.name, s.line, [...s.entries.values()])
    ),
  );
}

/** Index of the first `=` or `:`, or -1. */
function firstDelimiter(text: string): number {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "=" || text[i] === ":") return i;
  }
  return -1;
}

/** The name of a `[name]` line (given trimmed): trimmed, non-empty, no brackets. */
function parseHeader(stripped: string, lineNo: number, fail: LineFailure): string {
  const end = stripped.indexOf("]");
  if (end < 0) throw fail(lineNo, `unterminated section header ${quote(stripped)}`);
  const rest = trimBlanks(stripped.slice(end + 1));
  if (rest !== "" && rest[0] !== "#" && rest[0] !== ";") {
    throw fail(lineNo, `text after section header: ${quote(rest)}`);
  }
  const name = trimBlanks(stripped.slice(1, end));
  if (name === "") throw fail(lineNo, "empty section name");
  if (name.includes("[")) throw fail(lineNo, `"[" in section name ${quote(name)}`);
  return name;
}

/**
 * Python-dialect `%`: `%%` → `%`; `%(` would have interpolated in jailkit's
 * Python tools, so it is refused; any other `%` is kept. Scanned left to
 * right without overlap, as Python did: `%%(` is a literal `%(`.
 */
function collapsePercent(value: string, lineNo: number, fail: LineFailure): string {
  return value.replace(/%[%(]/g, (pair) => {
    if (pair === "%%") return "%";
    throw fail(lineNo, `"%(name)s" interpolation is not supported; write "%%(" for "%("`);
  });
}

/**
 * Reads and parses an ini file. Refuses, with an {@link IniError} naming the
 * path: a missing file (`reason: "missing"`), one that cannot be read or is
 * not a regular file (`"unreadable"`), one over {@link MAX_INI_BYTES}
 * (`"too-large"`), and one that is not UTF-8 text (`"not-text"`); then any
 * error of {@link parseIni}. Never reads more than the limit plus one byte.
 *
 * @example
 * ```ts
 * const ini = await readIniFile("/etc/jailkit/jk_init.ini", { pythonPercent: true });
 * const sftp = ini.section("sftp")?.list("paths");
 * ```
 */
export async function readIniFile(path: string, options: ParseOptions = {}): Promise<IniFile> {
  const fail = (reason: IniErrorReason, message: string) =>
    new IniError(`${path}: ${message}`, reason, path);
  const cannotRead = (e: unknown) =>
    e instanceof Deno.errors.NotFound
      ? fail("missing", "no such file")
      : fail("unreadable", `cannot read: ${errorText(e)}`);

  // stat before open: opening a FIFO for reading would block until a writer comes.
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw cannotRead(e);
  }
  if (!info.isFile) throw fail("unreadable", "not a regular file");
  if (info.size > MAX_INI_BYTES) {
    throw fail("too-large", `too large (${info.size} bytes, limit ${MAX_INI_BYTES})`);
  }

  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw cannotRead(e);
  }
  const buffer = new Uint8Array(MAX_INI_BYTES + 1);
  let length = 0;
  try {
    // Checked again on the open file: the path may have been replaced since the stat.
    if (!(await file.stat()).isFile) throw fail("unreadable", "not a regular file");
    while (length < buffer.length) {
      const n = await file.read(buffer.subarray(length));
      if (n === null) break;
      length += n;
    }
  } catch (e) {
    if (e instanceof IniError) throw e;
    throw cannotRead(e);
  } finally {
    file.close();
  }
  if (length > MAX_INI_BYTES) {
    throw fail("too-large", `too large (over ${MAX_INI_BYTES} bytes)`);
  }

  const bytes = buffer.subarray(0, length);
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    const line = bytes.subarray(0, nul).filter((b) => b === 0x0a).length + 1;
    throw new IniError(`${path}:${line}: not a text file (NUL byte)`, "not-text", path, line);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw fail("not-text", "not a text file (invalid UTF-8)");
  }
  return parseIni(text, path, options);
}

/**
 * Like {@link readIniFile}, but a missing file gives `undefined` (jk_chrootsh
 * runs with defaults when its ini file does not exist). Every other problem
 * still throws.
 *
 * @example
 * ```ts
 * const ini = await readIniFileIfPresent("/etc/jailkit/jk_chrootsh.ini");
 * const section = ini && sectionForUser(ini, "alice", ["alice"]);
 * ```
 */
export async function readIniFileIfPresent(
  path: string,
  options: ParseOptions = {},
): Promise<IniFile | undefined> {
  try {
    return await readIniFile(path, options);
  } catch (e) {
    if (e instanceof IniError && e.reason === "missing") return undefined;
    throw e;
  }
}

/**
 * The one section a C-dialect tool (jk_chrootsh, jk_lsh, jk_uchroot) uses for
 * a user: `[userName]` if present; else the first `[group NAME]` (exactly one
 * space) among `groupNames`, in the order given; else `[DEFAULT]`; else
 * `undefined`. Sections are never merged.
 *
 * jailkit 2.23 looks at the *primary* group only (§1.1, §1.2): pass
 * `[primaryGroupName]` to mirror it exactly. Passing supplementary groups
 * after it extends the search, and can select a section jailkit would not.
 *
 * @example
 * ```ts
 * // [alice] absent, [group jailed] present:
 * sectionForUser(ini, "alice", ["jailed"])?.name; // "group jailed"
 * ```
 */
export function sectionForUser(
  ini: IniFile,
  userName: string,
  groupNames: readonly string[],
): IniSection | undefined {
  const own = userName === "" ? undefined : ini.section(userName);
  if (own) return own;
  for (const group of groupNames) {
    const section = group === "" ? undefined : ini.section(`group ${group}`);
    if (section) return section;
  }
  return ini.section("DEFAULT");
}

/** A key of a section that the tool does not know, with its line. */
export interface UnknownKey {
  /** Lower-cased key as written. */
  key: string;
  /** 1-based line number of the key. */
  line: number;
}

/**
 * The keys of `section` not in `allowed` (compared lower-cased), in file
 * order, so a tool can warn or refuse with `file:line`.
 *
 * @example
 * ```ts
 * for (const { key, line } of unknownKeys(section, ["executables", "paths", "umask"])) {
 *   throw new JkError(`${section.file}:${line}: unknown key "${key}" in [${section.name}]`);
 * }
 * ```
 */
export function unknownKeys(section: IniSection, allowed: readonly string[]): UnknownKey[] {
  const known = new Set(allowed.map((k) => k.toLowerCase()));
  return section.keys()
    .filter((key) => !known.has(key))
    .map((key) => ({ key, line: section.entry(key)!.line }));
}
