/**
 * The command-line splitter of jk_lsh: turns the `-c` string that sshd hands
 * to the login shell into an argument vector, without a shell and without
 * ever running anything.
 *
 * What it accepts is the quoting subset of the POSIX shell that transfer
 * clients actually produce (rsync 3.2.4+ backslash-escapes its arguments,
 * git single-quotes its repository path):
 * - words are separated by spaces;
 * - `'…'` is literal, `"…"` is literal except that `\` escapes `$`, `` ` ``,
 *   `"` and `\`, and outside quotes `\` makes the next character literal;
 * - glob characters (`* ? [ ]`), braces, `#`, `!`, `=` and `~` (unless
 *   expanding) are ordinary characters: nothing is globbed, ever. A client
 *   that relies on the remote shell to glob gets the literal name.
 *
 * What it refuses, before splitting (reason in brackets):
 * - any C0 control character (tab and newline included), DEL, C1 controls
 *   and U+2028/U+2029 [`control`]: a newline is a command separator to a
 *   shell and a forged line to a log;
 * - U+FFFD [`encoding`]: Deno hands invalid UTF-8 in argv over as U+FFFD, so
 *   this is how non-UTF-8 input shows;
 * - more than {@link MAX_COMMAND_BYTES} bytes [`length`].
 *
 * And while splitting:
 * - an unquoted `| & ; < > ( )` [`operator`]: a shell would start another
 *   command or redirect; there is no second command here;
 * - `` ` `` and `$(` anywhere but in single quotes [`substitution`];
 * - unbalanced quotes or a trailing backslash [`syntax`];
 * - with expansion off (the default): any `$NAME`, `${…}` or `$` + special
 *   parameter [`expansion`] rather than passing it on literally, since the
 *   client meant something else;
 * - with expansion on: `${…}` with modifiers, special parameters and
 *   `$((…))` [`expansion`], an unset variable or unknown `~user` [`undefined`].
 *
 * Expansion, when the ini enables it (`allow_word_expansion`), is this
 * module's own and small: `~` and `~user` at the start of a word, `$NAME` and
 * `${NAME}` from the variables the caller supplies (jk_lsh passes the child's
 * clean environment, never its own). No field splitting, no globbing, no
 * command or arithmetic substitution. jailkit used glibc's `wordexp`, which
 * without `WRDE_NOCMD` runs `$(…)` through `/bin/sh`.
 *
 * @module
 */

/** Longest accepted command, in UTF-8 bytes (the kernel's per-argument limit is 128 KiB). */
export const MAX_COMMAND_BYTES = 32 * 1024;

/** Why a command was refused; jk_lsh exits 6 for every one of them. */
export type TokenErrorReason =
  | "control"
  | "encoding"
  | "length"
  | "operator"
  | "substitution"
  | "syntax"
  | "expansion"
  | "undefined";

/**
 * A command the splitter refuses. The message is one line and safe to log
 * (it quotes the offending character by code, never raw).
 *
 * @example
 * ```ts
 * try {
 *   tokenize("scp -t x; id");
 * } catch (e) {
 *   if (e instanceof TokenError) console.log(e.reason); // "operator"
 * }
 * ```
 */
export class TokenError extends Error {
  /**
   * @param reason the kind of problem
   * @param message one line describing it
   */
  constructor(readonly reason: TokenErrorReason, message: string) {
    super(message);
    this.name = "TokenError";
  }
}

/** Where `~` and `$NAME` get their values when expansion is enabled. */
export interface Expansion {
  /** The value of a variable, or `undefined` when it is not set. */
  variable(name: string): string | undefined;
  /** The home directory of `user`, or of the caller when `user` is `""`. */
  home(user: string): string | undefined;
}

/** Options of {@link tokenize}. */
export interface TokenizeOptions {
  /** Expand `~` and `$NAME` from here; without it any expansion is refused. */
  expansion?: Expansion;
}

// deno-lint-ignore no-control-regex -- matching control characters is the point
const FORBIDDEN = /[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd]/;
const OPERATORS = new Set(["|", "&", ";", "<", ">", "(", ")"]);
const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const USER_NAME = /^[A-Za-z0-9._-]*$/;
/** Characters a backslash escapes inside double quotes (newline cannot occur here). */
const DQUOTE_ESCAPES = new Set(["$", "`", '"', "\\"]);

/**
 * Describes a character for a message: printable ones quoted, others by code.
 *
 * @example
 * ```ts
 * describeChar("\n"); // "U+000A"
 * ```
 */
export function describeChar(c: string): string {
  const code = c.codePointAt(0)!;
  if (code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029) {
    return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  }
  return JSON.stringify(c);
}

/**
 * Checks the raw command before any splitting: length, encoding and control
 * characters. Throws {@link TokenError}.
 *
 * @example
 * ```ts
 * checkCommandText("rsync --version"); // ok
 * checkCommandText("id\nsh"); // throws TokenError "control"
 * ```
 */
export function checkCommandText(command: string): void {
  const bytes = new TextEncoder().encode(command).length;
  if (bytes > MAX_COMMAND_BYTES) {
    throw new TokenError(
      "length",
      `command is ${bytes} bytes long, more than the limit of ${MAX_COMMAND_BYTES}`,
    );
  }
  const bad = FORBIDDEN.exec(command);
  if (bad) {
    if (bad[0] === "\ufffd") {
      throw new TokenError("encoding", "command is not valid UTF-8");
    }
    throw new TokenError(
      "control",
      `control character ${describeChar(bad[0])} at offset ${bad.index} in command`,
    );
  }
}

/** The word being built, and whether it exists even when empty (`''`). */
interface Word {
  text: string;
  quoted: boolean;
}

/**
 * Splits a command into words (see the module documentation for the exact
 * rules). Throws {@link TokenError} for anything refused; never returns an
 * empty word list for a command that has a word.
 *
 * @example
 * ```ts
 * tokenize(String.raw`rsync --server -e.LsfxCIvu . dest\ dir/`);
 * // ["rsync", "--server", "-e.LsfxCIvu", ".", "dest dir/"]
 * tokenize("git-upload-pack '/srv/a b.git'"); // ["git-upload-pack", "/srv/a b.git"]
 * tokenize("scp -f ~/x", { expansion: { variable: () => undefined, home: () => "/home/u" } });
 * // ["scp", "-f", "/home/u/x"]
 * ```
 */
export function tokenize(command: string, options: TokenizeOptions = {}): string[] {
  checkCommandText(command);
  const expansion = options.expansion;
  const words: string[] = [];
  let word: Word | null = null;
  const current = (): Word => (word ??= { text: "", quoted: false });
  const finish = () => {
    if (word && (word.text !== "" || word.quoted)) words.push(word.text);
    word = null;
  };

  let i = 0;
  while (i < command.length) {
    const c = command[i];
    if (c === " ") {
      finish();
      i++;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) throw syntaxError(command, "unterminated single quote");
      const w = current();
      w.text += command.slice(i + 1, end);
      w.quoted = true;
      i = end + 1;
    } else if (c === '"') {
      i = readDoubleQuoted(command, i + 1, current(), expansion);
    } else if (c === "\\") {
      if (i + 1 >= command.length) throw syntaxError(command, "trailing backslash");
      current().text += command[i + 1];
      i += 2;
    } else if (OPERATORS.has(c)) {
      throw new TokenError(
        "operator",
        `illegal word expansion of the command: unquoted ${describeChar(c)}`,
      );
    } else if (c === "`") {
      throw substitutionError();
    } else if (c === "$") {
      const expanded = readDollar(command, i, expansion);
      current().text += expanded.value;
      i = expanded.next;
    } else if (c === "~" && word === null && expansion) {
      const tilde = readTilde(command, i, expansion);
      current().text += tilde.value;
      i = tilde.next;
    } else {
      current().text += c;
      i++;
    }
  }
  finish();
  return words;
}

function syntaxError(command: string, what: string): TokenError {
  return new TokenError(
    "syntax",
    `shell syntax error in command (${what}): ${
      command.length > 200 ? command.slice(0, 200) + "…" : command
    }`,
  );
}

function substitutionError(): TokenError {
  return new TokenError("substitution", "command substitution not allowed");
}

/** Reads a `"…"` body starting after the opening quote; returns the index after the closing one. */
function readDoubleQuoted(
  command: string,
  start: number,
  word: Word,
  expansion: Expansion | undefined,
): number {
  word.quoted = true;
  let i = start;
  while (i < command.length) {
    const c = command[i];
    if (c === '"') return i + 1;
    if (c === "\\" && i + 1 < command.length && DQUOTE_ESCAPES.has(command[i + 1])) {
      word.text += command[i + 1];
      i += 2;
    } else if (c === "`") {
      throw substitutionError();
    } else if (c === "$") {
      const expanded = readDollar(command, i, expansion);
      word.text += expanded.value;
      i = expanded.next;
    } else {
      word.text += c;
      i++;
    }
  }
  throw syntaxError(command, "unterminated double quote");
}

/** The value a `$…` at `at` stands for, and the index after it. */
function readDollar(
  command: string,
  at: number,
  expansion: Expansion | undefined,
): { value: string; next: number } {
  const next = command[at + 1];
  if (next === "(") throw substitutionError();
  if (next === undefined || !(next === "{" || NAME_START.test(next) || /[0-9@*#?$!-]/.test(next))) {
    return { value: "$", next: at + 1 }; // a lone "$" is literal, as in the shell
  }
  if (!expansion) {
    throw new TokenError(
      "expansion",
      "word expansion is not enabled for this account ($ in the command)",
    );
  }
  let name: string;
  let end: number;
  if (next === "{") {
    const close = command.indexOf("}", at + 2);
    name = close < 0 ? "" : command.slice(at + 2, close);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new TokenError("expansion", "only ${NAME} is supported, without modifiers");
    }
    end = close + 1;
  } else if (NAME_START.test(next)) {
    end = at + 1;
    while (end < command.length && NAME_CHAR.test(command[end])) end++;
    name = command.slice(at + 1, end);
  } else {
    throw new TokenError("expansion", `special parameter $${next} is not supported`);
  }
  const value = expansion.variable(name);
  if (value === undefined) throw new TokenError("undefined", `undefined shell variable ${name}`);
  return { value, next: end };
}

/** `~` or `~user` at the start of a word, up to the first `/`, space or end. */
function readTilde(
  command: string,
  at: number,
  expansion: Expansion,
): { value: string; next: number } {
  let end = at + 1;
  while (end < command.length && command[end] !== "/" && command[end] !== " ") end++;
  const user = command.slice(at + 1, end);
  if (!USER_NAME.test(user)) return { value: "~", next: at + 1 }; // quoted or odd: literal
  const home = expansion.home(user);
  if (home === undefined) {
    throw new TokenError("undefined", `unknown user in ~${user}`);
  }
  return { value: home, next: end };
}

/** Words that need no quoting to read back as one word. */
const PLAIN_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Renders words for a log line or a message so that each reads back as one
 * word: plain words as they are, others in single quotes (jailkit joined them
 * with spaces, which made `a b` and `'a b'` look the same).
 *
 * @example
 * ```ts
 * quoteWords(["rsync", "--server", "dest dir/", "it's"]);
 * // "rsync --server 'dest dir/' 'it'\\''s'"
 * ```
 */
export function quoteWords(words: readonly string[]): string {
  return words.map((w) => PLAIN_WORD.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`).join(" ");
}
