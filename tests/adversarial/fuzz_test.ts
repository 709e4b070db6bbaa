/**
 * Seeded fuzzing of jk_lsh's command splitter (src/lsh/tokens.ts), its
 * per-program argument grammars (src/lsh/grammar.ts) and its program lookup
 * (src/lsh/policy.ts). The INI parser and the ELF/ld.so.cache readers have
 * their own seeded fuzz tests (tests/ini_test.ts, tests/elf_test.ts).
 *
 * Properties, over tens of thousands of generated inputs:
 * - only typed refusals: `TokenError` with a known reason and a one-line
 *   message, `GrammarError` with a one-line message; nothing else is ever
 *   thrown;
 * - what the splitter accepts, a POSIX shell (dash, with globbing off) splits
 *   into the same words, with and without expansion; and what the log shows
 *   (`quoteWords`) splits back into the same words;
 * - what a grammar accepts is rebuilt into an argument vector that a second,
 *   independent reading of the module's rules accepts: only allowed options,
 *   paths behind `--`, never an option that runs a command;
 * - the program lookup only ever returns a clean absolute path inside the
 *   fence.
 *
 * Inputs that once broke a property are kept in `REGRESSIONS` and checked
 * first. `JK_SEED=N` runs another sequence.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  checkArguments,
  DEFAULT_SFTP_SERVER_FLAGS,
  GrammarError,
  RSYNC_LONG_OPTIONS,
} from "../../src/lsh/grammar.ts";
import { isCleanAbsolute, resolveProgram } from "../../src/lsh/policy.ts";
import {
  type Expansion,
  MAX_COMMAND_BYTES,
  quoteWords,
  TokenError,
  type TokenErrorReason,
  tokenize,
} from "../../src/lsh/tokens.ts";
import { Rng, runCommand, testSeed } from "../harness.ts";

const haveDash = await Deno.stat("/usr/bin/dash").then(() => true, () => false);

const REASONS: ReadonlySet<TokenErrorReason> = new Set<TokenErrorReason>([
  "control",
  "encoding",
  "length",
  "operator",
  "substitution",
  "syntax",
  "expansion",
  "undefined",
]);

/**
 * Inputs kept because they once mattered: edge cases of quoting, expansion
 * and grammar that the generators below reach only by luck.
 */
const REGRESSIONS: readonly string[] = [
  "",
  " ",
  "''",
  '""',
  "\\",
  "'\\''",
  '"\\"',
  '"\\\\"',
  "$",
  "a$",
  "$'a'",
  '$"a"',
  "${",
  "${}",
  "${A",
  "$((",
  "~",
  "~/",
  "~'x'",
  "~$A",
  '""~',
  "a=~",
  "rsync --server -e.LsfxCIvu . ''",
  "rsync --server --sender -vlogDtpre.iLsfxCIvu . a b",
  "rsync --server -e sh . x",
  "rsync --server -se.L . x",
  "rsync --server --rsh=sh . x",
  "rsync --server --files-from -- . x",
  "rsync --server -- . -x",
  "rsync --server -B . x",
  "scp -t -- -x",
  "scp -tf x",
  "scp -t a:b",
  "scp -f ./a:b",
  "scp -oProxyCommand=sh -t x",
  "sftp-server -d",
  "sftp-server -l",
  "sftp-server -lINFO",
  "sftp-server -u 0777 -e",
  "git-upload-pack -- x",
  "git-upload-pack ''",
  "\ud800",
  "a\udfff b",
  "😀 '😀' \"😀\"",
  "\u00a0x",
];

// ---------------------------------------------------------------------------
// Generators

/** Pieces of shell syntax, weighted towards what can go wrong. */
const ATOMS: readonly string[] = [
  ..." ".repeat(8),
  ..."''''\"\"\"\"\\\\\\",
  ..."$$$`()|;&<>{}~#*?[]!=:@-.,/%+^",
  ..."abzAQ09".repeat(2),
  "--",
  "é",
  "日本",
  "😀",
  "\u00a0",
  "\t",
  "\n",
  "\r",
  "\x00",
  "\x1b",
  "\x7f",
  "\u0085",
  "\u2028",
  "\ufffd",
  "\ud800",
  "$A",
  "$B",
  "${A}",
  "${C}x",
  "$NOPE",
  "$(id)",
  "$((1))",
  "${A:-x}",
  "$$",
  "$1",
  "$@",
  "~",
  "~/",
  "~root",
  "\\n",
  "''",
  '""',
];

/** Realistic commands of transfer clients, to mutate. */
const SEEDS: readonly string[] = [
  "rsync --server -vlogDtpre.iLsfxCIvu . up/",
  "rsync --server --sender -vlogDtpre.iLsfxCIvu . 'a b'",
  String.raw`rsync --server -logDtpre.iLsfxCIvu --delete --partial . dest\ dir/`,
  "rsync --version",
  "scp -t dir",
  "scp -r -d -t -- x",
  "scp -f -- 'file name'",
  "/usr/lib/openssh/sftp-server -l INFO -f AUTH",
  "sftp-server -e",
  "git-upload-pack '/srv/repo.git'",
  "git-receive-pack 'repo.git'",
];

/** Words that probe the grammars: valid pieces and every known trick. */
const WORDS: readonly string[] = [
  "--server",
  "--sender",
  ".",
  "--",
  "-",
  "-e",
  "sh",
  "-e.LsfxC",
  "-e31.iLsfxCIvu",
  "-vlogDtpre.iLsfxCIvu",
  "-logDtprze.iLsfxCIvu",
  "-s",
  "-se.L",
  "-vvvvvvvvvvvv",
  "-B",
  "-B1024",
  "-M--rsh=sh",
  "-T/tmp",
  "-f+ x",
  "-F",
  "--rsh=sh",
  "--rsh",
  "--rs",
  "--rsync-path=x",
  "--files-from=x",
  "--files-from",
  "--delete",
  "--delete=x",
  "--timeout=30",
  "--timeout",
  "30",
  "1.5M",
  "--block-size=1k",
  "--bwlimit=1M+1",
  "--max-size=$(id)",
  "--info=progress2",
  "--log-file=/tmp/x",
  "--daemon",
  "--config=/x",
  "--protect-args",
  "--secluded-args",
  "--remote-option=x",
  "--write-batch=x",
  "--partial-dir=",
  "--temp-dir=/tmp",
  "--no-r",
  "-t",
  "-f",
  "-r",
  "-d",
  "-p",
  "-q",
  "-v",
  "-tr",
  "-rt",
  "-S",
  "/bin/sh",
  "-o",
  "ProxyCommand=sh",
  "-oProxyCommand=sh",
  "-P",
  "-l",
  "INFO",
  "-lVERBOSE",
  "-u",
  "022",
  "0777",
  "-h",
  "-R",
  "-Q",
  "requests",
  "open,read",
  "LOCAL0",
  "AUTH",
  "/home/%u",
  "host:path",
  "user@host:x",
  "a:b",
  "/x:y",
  "./x:y",
  "dir/",
  "dest dir/",
  "",
  "-x",
  "--version",
  "-V",
  "x",
  "/srv/repo.git",
];

/** The grammars' programs (resolved paths) and the names a client types. */
const PROGRAMS: readonly [string, string][] = [
  ["/usr/bin/rsync", "rsync"],
  ["/usr/bin/scp", "scp"],
  ["/usr/lib/openssh/sftp-server", "/usr/lib/openssh/sftp-server"],
  ["/usr/bin/git-upload-pack", "git-upload-pack"],
  ["/usr/lib/git-core/git-receive-pack", "git-receive-pack"],
  ["/usr/bin/git-upload-archive", "git-upload-archive"],
  ["/usr/bin/id", "id"],
];

const SFTP_FLAGS = ["-e", "-h", "-R", "-d", "-f", "-l", "-P", "-p", "-Q", "-u"];

function randomCommand(rng: Rng): string {
  const kind = rng.int(10);
  if (kind < 4) {
    let out = "";
    for (let n = rng.int(24); n >= 0; n--) out += rng.pick(ATOMS);
    return out;
  }
  // A client command, mutated a few times.
  let text = rng.pick(SEEDS);
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(text.length + 1);
    switch (rng.int(4)) {
      case 0:
        text = text.slice(0, at) + rng.pick(ATOMS) + text.slice(at);
        break;
      case 1:
        text = text.slice(0, at) + text.slice(at + 1 + rng.int(3));
        break;
      case 2:
        text = text.slice(0, at) + " " + rng.pick(WORDS) + " " + text.slice(at);
        break;
      default:
        text = text.slice(0, at) + rng.pick(ATOMS) + text.slice(at + 1);
    }
  }
  return text;
}

function randomWords(rng: Rng, typed: string): string[] {
  const words = [typed];
  if (rng.chance(0.5)) words.push(rng.pick(["--server", "-t", "-f", "--", "-l"]));
  for (let n = rng.int(8); n > 0; n--) words.push(rng.pick(WORDS));
  return words;
}

// ---------------------------------------------------------------------------
// Property checks

/** Runs `fn`; a throw must be a `TokenError` with a known reason and one line. */
function splits(command: string, expansion?: Expansion): string[] | null {
  try {
    return tokenize(command, { expansion });
  } catch (e) {
    if (!(e instanceof TokenError)) {
      throw new Error(`tokenize(${JSON.stringify(command)}) threw ${e}`, { cause: e });
    }
    assert.ok(REASONS.has(e.reason), `unknown reason ${e.reason}`);
    assert.ok(!/[\n\r]/.test(e.message), `two-line message for ${JSON.stringify(command)}`);
    return null;
  }
}

/** Accepted commands: the words are clean and read back through `quoteWords`. */
function checkAccepted(command: string, words: string[]): void {
  const what = JSON.stringify(command);
  assert.ok(new TextEncoder().encode(command).length <= MAX_COMMAND_BYTES, what);
  for (const word of words) {
    // deno-lint-ignore no-control-regex -- the splitter must have refused them
    assert.ok(!/[\x00-\x1f\x7f-\x9f\u2028\u2029\ufffd]/.test(word), `${what}: ${word}`);
  }
  assert.deepEqual(tokenize(quoteWords(words)), words, `quoteWords round trip of ${what}`);
}

/** rsync's long options that run or read something a server must never be told to. */
const RSYNC_NEVER =
  /^--(rsh|rsync-path|daemon|config|dparam|log-file|write-batch|read-batch|only-write-batch|protect-args|secluded-args|copy-devices|write-devices|no-munge-links|remote-option|early-input|password-file|address|port|sockopts)\b/;
/** Short options an rsync server must never get: a shell, secluded args, values, filter files. */
const RSYNC_SHORT_NEVER = new Set("esBfFMT@".split(""));

/** An independent reading of the documented grammar rules, applied to a rebuilt argv. */
function checkRebuilt(program: string, words: string[], out: string[], sftp: string[]): void {
  const what = `${program} ${JSON.stringify(words)} -> ${JSON.stringify(out)}`;
  const name = program.slice(program.lastIndexOf("/") + 1);
  if (name === "rsync") {
    if (out.length === 1 && out[0] === "--version") {
      assert.deepEqual(words.slice(1), ["--version"], what);
      return;
    }
    assert.equal(out[0], "--server", what);
    const end = out.indexOf("--");
    assert.ok(end > 0 && out[end + 1] === ".", what);
    const paths = out.slice(end + 2);
    assert.ok(paths.length >= 1 && paths.every((p) => p !== ""), what);
    const options = out.slice(1, end);
    if (!options.includes("--sender")) assert.equal(paths.length, 1, what);
    for (const option of options) {
      assert.ok(!RSYNC_NEVER.test(option), `${what}: ${option}`);
      if (option.startsWith("--")) {
        const eq = option.indexOf("=");
        const kind = RSYNC_LONG_OPTIONS.get(option.slice(2, eq < 0 ? undefined : eq));
        assert.ok(kind !== undefined, `${what}: ${option}`);
        assert.equal(eq < 0, kind === "none", `${what}: ${option}`);
        if (eq >= 0) assert.notEqual(option.slice(eq + 1), "", `${what}: ${option}`);
        if (kind === "number") {
          assert.match(option.slice(eq + 1), /^-?[0-9][0-9.]*[A-Za-z]*([+-]1)?$/, what);
        }
      } else if (/^-B[0-9]+$/.test(option)) {
        continue;
      } else {
        // Letters, then optionally the protocol string "e[digits].flags" (alone too).
        const cluster = /^-([A-Za-z0-9]*?)(e[0-9]*\.[A-Za-z]*)?$/.exec(option);
        assert.ok(cluster && (cluster[1] !== "" || cluster[2]), `${what}: ${option}`);
        for (const letter of cluster[1]) {
          assert.ok(!RSYNC_SHORT_NEVER.has(letter), `${what}: -${letter}`);
        }
      }
    }
  } else if (name === "scp") {
    const end = out.indexOf("--");
    assert.ok(end >= 0, what);
    const flags = out.slice(0, end), paths = out.slice(end + 1);
    for (const flag of flags) assert.match(flag, /^-[dfpqrtv]$/, what);
    assert.equal(flags.filter((f) => f === "-t" || f === "-f").length, 1, what);
    assert.ok(paths.length >= 1 && (!flags.includes("-t") || paths.length === 1), what);
    for (const path of paths) {
      assert.notEqual(path, "", what);
      const colon = path.indexOf(":"), slash = path.indexOf("/");
      assert.ok(colon < 0 || (slash >= 0 && slash < colon), `${what}: remote ${path}`);
    }
  } else if (name === "sftp-server") {
    for (let i = 0; i < out.length; i++) {
      assert.ok(sftp.includes(out[i]), `${what}: ${out[i]} not allowed`);
      if (["-d", "-f", "-l", "-P", "-p", "-Q", "-u"].includes(out[i])) i++;
    }
  } else if (name.startsWith("git-")) {
    assert.equal(words.length, 2, what);
    assert.deepEqual(out, [words[1]], what);
    assert.ok(out[0] !== "" && !out[0].startsWith("-"), what);
  } else {
    assert.deepEqual(out, words.slice(1), what);
  }
}

/** Runs a grammar; a throw must be a one-line `GrammarError`. True when accepted. */
function checkGrammar(program: string, words: string[], sftp: string[]): boolean {
  let out: string[];
  try {
    out = checkArguments(program, words, { sftpServerFlags: sftp });
  } catch (e) {
    if (!(e instanceof GrammarError)) {
      throw new Error(`checkArguments(${program}, ${JSON.stringify(words)}) threw ${e}`, {
        cause: e,
      });
    }
    assert.ok(!/[\n\r]/.test(e.message), `two-line message: ${e.message}`);
    return false;
  }
  checkRebuilt(program, words, out, sftp);
  return true;
}

function randomSftpFlags(rng: Rng): string[] {
  if (rng.chance(0.3)) return [...DEFAULT_SFTP_SERVER_FLAGS];
  return SFTP_FLAGS.filter(() => rng.chance(0.5));
}

// ---------------------------------------------------------------------------
// The shell, for comparison

/** Variables and home both sides expand from. */
const VARIABLES: Record<string, string> = { A: "alpha", B: "", C: "x/y-z", HOME: "/home/alice" };
const EXPANSION: Expansion = {
  variable: (name) => VARIABLES[name],
  home: (user) => user === "" ? VARIABLES.HOME : undefined,
};

/**
 * How dash splits each command (globbing off), in one dash process: each
 * command's words are printed NUL-terminated, followed by a record mark.
 * Returns null when dash did not get through the script (a syntax error).
 */
async function dashWords(commands: string[]): Promise<string[][] | null> {
  const script = "set -f\n" +
    commands.map((c) => `printf '%s\\0' ${c}\nprintf '\\001\\0'\n`).join("");
  const r = await runCommand("/usr/bin/dash", ["-c", script], {
    env: { ...VARIABLES, PATH: "/usr/bin:/bin", LC_ALL: "C.UTF-8" },
  });
  const records = r.stdout.split("\x01\0");
  if (r.code !== 0 || records.length !== commands.length + 1) return null;
  return records.slice(0, -1).map((rec) => rec.split("\0").slice(0, -1));
}

/** Compares dash with the splitter for `cases`; on a dash failure, finds the culprit. */
async function compareWithDash(cases: { command: string; words: string[] }[]): Promise<void> {
  for (let at = 0; at < cases.length; at += 500) {
    const batch = cases.slice(at, at + 500);
    let got = await dashWords(batch.map((c) => c.command));
    if (got === null) {
      for (const one of batch) {
        const single = await dashWords([one.command]);
        assert.ok(single, `dash refuses what jk_lsh accepts: ${JSON.stringify(one.command)}`);
      }
      got = (await dashWords(batch.map((c) => c.command)))!;
    }
    batch.forEach((c, i) => {
      assert.deepEqual(c.words, got![i], `dash splits ${JSON.stringify(c.command)} differently`);
    });
  }
}

/**
 * Commands where a shell and jk_lsh differ on purpose (module documentation
 * of src/lsh/tokens.ts): `#` starts no comment here, `~` is literal unless
 * expanding, and lone surrogates cannot arrive through argv.
 */
function comparable(command: string, expanding: boolean): boolean {
  if (
    command.includes("#") ||
    /[\ud800-\udfff]/.test(command.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""))
  ) {
    return false;
  }
  return expanding || !command.includes("~");
}

// ---------------------------------------------------------------------------
// Tests

Deno.test("FUZZ jk_lsh splitter: kept regressions and 30000 seeded commands give words or a typed refusal, never a crash", () => {
  const rng = new Rng(testSeed(4242));
  const inputs = [...REGRESSIONS];
  for (let i = 0; i < 30000; i++) inputs.push(randomCommand(rng));
  inputs.push("a ".repeat(MAX_COMMAND_BYTES / 2), "x".repeat(MAX_COMMAND_BYTES + 1));
  let accepted = 0;
  for (const command of inputs) {
    for (const expansion of [undefined, EXPANSION]) {
      const words = splits(command, expansion);
      if (words === null) continue;
      accepted++;
      checkAccepted(command, words);
    }
  }
  // Both outcomes were exercised, or the generator is broken.
  assert.ok(accepted > 3000 && accepted < inputs.length * 2 - 3000, `${accepted} accepted`);
});

Deno.test({
  name:
    "FUZZ jk_lsh splitter: what it accepts, dash splits into the same words (with and without expansion)",
  ignore: !haveDash,
  fn: async () => {
    const rng = new Rng(testSeed(4343));
    for (const expanding of [false, true]) {
      const cases: { command: string; words: string[] }[] = [];
      const candidates = [...REGRESSIONS];
      for (let i = 0; i < 12000; i++) candidates.push(randomCommand(rng));
      for (const command of candidates) {
        if (!comparable(command, expanding)) continue;
        const words = splits(command, expanding ? EXPANSION : undefined);
        // An empty command runs nothing in jk_lsh; printf would print one empty word.
        if (words !== null && words.length > 0) cases.push({ command, words });
      }
      assert.ok(cases.length > 1000, `only ${cases.length} comparable cases`);
      await compareWithDash(cases);
    }
  },
});

Deno.test("FUZZ jk_lsh grammars: 40000 seeded argument vectors give a rebuilt argv that follows the rules, or a typed refusal", () => {
  const rng = new Rng(testSeed(4444));
  let accepted = 0;
  const vectors: string[][] = [];
  for (const command of [...REGRESSIONS, ...SEEDS]) {
    const words = splits(command);
    if (words !== null && words.length > 0) vectors.push(words);
  }
  for (let i = 0; i < 20000; i++) {
    const words = splits(randomCommand(rng));
    if (words !== null && words.length > 0) vectors.push(words);
  }
  for (let i = 0; i < 20000; i++) vectors.push(randomWords(rng, rng.pick(PROGRAMS)[1]));
  for (const words of vectors) {
    const [program] = rng.pick(PROGRAMS);
    const sftp = randomSftpFlags(rng);
    if (checkGrammar(program, words, sftp)) accepted++;
    // The same words against the program they name.
    const named = PROGRAMS.find(([, typed]) => typed === words[0]);
    if (named && checkGrammar(named[0], words, sftp)) accepted++;
  }
  assert.ok(accepted > 500, `only ${accepted} accepted: the generator misses the valid forms`);
});

Deno.test("FUZZ jk_lsh program lookup: only clean absolute paths inside the fence, for 20000 seeded names", () => {
  const rng = new Rng(testSeed(4545));
  const fence = new Set(["/usr/bin/rsync", "/usr/bin/scp", "/usr/lib/openssh/sftp-server"]);
  const files = new Set([...fence, "/usr/bin/id", "/bin/sh", "/usr/local/bin/rsync"]);
  const names = [
    "rsync",
    "scp",
    "sftp-server",
    "id",
    "sh",
    "",
    ".",
    "..",
    "./rsync",
    "../bin/rsync",
    "/usr/bin/rsync",
    "/usr/bin/../bin/rsync",
    "//usr/bin/rsync",
    "/usr/bin/rsync/",
    "/usr/bin/./rsync",
    "/usr/local/bin/rsync",
    "/bin/sh",
    "usr/bin/rsync",
    "rsync ",
    "RSYNC",
  ];
  const dirs = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/lib/openssh", "/", "/usr/bin/"];
  for (let i = 0; i < 20000; i++) {
    const word = rng.chance(0.7) ? rng.pick(names) : randomCommand(rng).slice(0, 20);
    const paths = dirs.filter(() => rng.chance(0.5));
    const found = resolveProgram(word, paths, (p) => files.has(p), (p) => fence.has(p));
    if (!found.found) continue;
    const what = `${JSON.stringify(word)} in ${JSON.stringify(paths)} -> ${found.path}`;
    assert.ok(fence.has(found.path) && isCleanAbsolute(found.path), what);
    if (word.startsWith("/")) assert.equal(found.path, word, what);
    else {
      assert.ok(!word.includes("/") && word !== "." && word !== "..", what);
      assert.ok(paths.some((d) => found.path === (d === "/" ? `/${word}` : `${d}/${word}`)), what);
    }
  }
});
