/**
 * Tests of src/ini.ts: syntax, every error message (with file:line), typed
 * accessors, section lookup, reading real files (the shipped /etc/jailkit
 * ones included), hostile input and a seeded fuzz run.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  IniError,
  type IniErrorReason,
  IniFile,
  MAX_INI_BYTES,
  parseIni,
  type ParseOptions,
  readIniFile,
  readIniFileIfPresent,
  sectionForUser,
  unknownKeys,
} from "../src/ini.ts";
import { JkError } from "../src/cli.ts";
import { Rng, testSeed } from "./harness.ts";

const F = "/etc/jailkit/test.ini";

/** Asserts that `fn` throws an IniError of `reason` whose message matches `message` exactly. */
function assertIniError(fn: () => unknown, reason: IniErrorReason, message: string | RegExp) {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown instanceof IniError, `expected IniError, got ${String(thrown)}`);
  assert.ok(thrown instanceof JkError, "IniError must be a JkError so runMain prints one line");
  assert.equal(thrown.reason, reason, thrown.message);
  assert.ok(!thrown.message.includes("\n"), `one line: ${JSON.stringify(thrown.message)}`);
  if (typeof message === "string") assert.equal(thrown.message, message);
  else assert.match(thrown.message, message);
}

async function assertIniErrorAsync(
  fn: () => Promise<unknown>,
  reason: IniErrorReason,
  message: string | RegExp,
) {
  let thrown: unknown;
  try {
    await fn();
  } catch (e) {
    thrown = e;
  }
  assertIniError(
    () => {
      if (thrown) throw thrown;
    },
    reason,
    message,
  );
}

const parse = (text: string, options?: ParseOptions) => parseIni(text, F, options);

/** A root-owned scratch directory (never under world-writable /tmp), removed afterwards. */
async function withScratch(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ dir: "/var/lib", prefix: "jktest-ini-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------- syntax

Deno.test("sections, both delimiters, comments, key case, path-named sections", () => {
  const ini = parse(
    [
      "# leading comment",
      "; semicolon comment",
      "[user]",
      "Executables = /usr/bin/ls",
      "paths: /usr/bin, /bin",
      "   # indented comment",
      "\t; indented semicolon comment",
      "[group users] # trailing comment after a header",
      "env=TERM",
      "[DEFAULT]",
      "umask = 022",
      "[ /home/jail/dev/log ]",
      "interval = 2.0",
      "[Case]",
      "a = 1",
      "[case]",
      "a = 2",
    ].join("\n"),
  );
  assert.deepEqual(ini.names(), [
    "user",
    "group users",
    "DEFAULT",
    "/home/jail/dev/log",
    "Case",
    "case",
  ]);
  const user = ini.section("user")!;
  assert.deepEqual(user.keys(), ["executables", "paths"]);
  assert.equal(user.get("EXECUTABLES"), "/usr/bin/ls");
  assert.equal(user.get("executables"), "/usr/bin/ls");
  assert.deepEqual(user.list("paths"), ["/usr/bin", "/bin"]);
  assert.deepEqual(user.entry("paths"), { key: "paths", value: "/usr/bin, /bin", line: 5 });
  assert.equal(user.line, 3);
  assert.equal(user.file, F);
  assert.equal(ini.section("/home/jail/dev/log")!.float("interval", 5), 2);
  assert.equal(ini.section("Case")!.get("a"), "1");
  assert.equal(ini.section("case")!.get("a"), "2");
  assert.equal(ini.section("CASE"), undefined);
  assert.ok(ini.has("DEFAULT") && !ini.has("default"));
  assert.equal(ini.sections().length, 6);
});

Deno.test("values: trimmed, verbatim inside, inline # kept, first delimiter splits", () => {
  const ini = parse(
    [
      "[s]",
      "injail_shell =   /usr/bin/bash  \t",
      "note = keep # this, and ; this",
      "url: http://example.org/a=b",
      "env = A=b:c",
      "empty =",
      "blank =    ",
      "brackets = [not a section]",
      "utf8 = été ✓",
    ].join("\n"),
  );
  const s = ini.section("s")!;
  assert.equal(s.get("injail_shell"), "/usr/bin/bash");
  assert.equal(s.get("note"), "keep # this, and ; this");
  assert.equal(s.get("url"), "http://example.org/a=b");
  assert.equal(s.get("env"), "A=b:c");
  assert.equal(s.get("brackets"), "[not a section]");
  assert.equal(s.get("utf8"), "été ✓");
  assert.ok(s.has("empty"));
  assert.equal(s.get("empty"), undefined, "an empty value means not set");
  assert.equal(s.get("blank", "dflt"), "dflt");
  assert.equal(s.entry("empty")!.value, "");
  assert.equal(s.get("absent"), undefined);
  assert.equal(s.get("absent", "x"), "x");
  assert.equal(ini.names().length, 1, "[ inside a value does not start a section");
});

Deno.test("values: unicode blanks are not trimmed (jailkit trims ASCII only)", () => {
  const s = parse("[s]\nshell = /bin/sh\u00a0\n").section("s")!;
  assert.equal(s.get("shell"), "/bin/sh\u00a0");
});

Deno.test("the prefix-key bug of the C parser is absent", () => {
  const s = parse("[alice]\nrelax_home_group=1\nenv=TERM\n").section("alice")!;
  assert.equal(s.bool("relax_home_group", false), true);
  assert.equal(s.bool("relax_home_group_permissions", false), false);
  assert.equal(s.has("relax_home_group_permissions"), false);
  assert.deepEqual(s.list("environment"), []);
  assert.equal(s.get("relax"), undefined, "a key prefix does not match either");
});

Deno.test("DEFAULT is an ordinary section: never merged into others", () => {
  const ini = parse("[DEFAULT]\nenv = TERM\numask = 077\n[alice]\npaths = /bin\n");
  const alice = ini.section("alice")!;
  assert.equal(alice.has("env"), false);
  assert.equal(alice.octal("umask", 0o022), 0o022);
  assert.deepEqual(ini.section("DEFAULT")!.keys(), ["env", "umask"]);
});

Deno.test("lists: comma split, trimmed, empty items dropped, fallback", () => {
  const s = parse("[s]\na = x, ,y ,,\t z ,\nb =\nc = , ,\nd = single\n").section("s")!;
  assert.deepEqual(s.list("a"), ["x", "y", "z"]);
  assert.deepEqual(s.list("b"), []);
  assert.deepEqual(s.list("c"), []);
  assert.deepEqual(s.list("d"), ["single"]);
  assert.deepEqual(s.list("absent"), []);
  assert.deepEqual(s.list("absent", ["dflt"]), ["dflt"]);
  assert.deepEqual(s.list("b", ["dflt"]), [], "a present empty list is empty, not the fallback");
});

Deno.test("continuation lines follow Python configparser", () => {
  const ini = parse(
    [
      "[sftp]",
      "paths = /usr/lib/sftp-server,",
      "    /usr/libexec/sftp-server,",
      "# a comment inside the value",
      "",
      "\t/usr/lib/openssh/sftp-server",
      "devices = /dev/null",
      "[x]",
      "  a = 1", // indented key right after a header: a key, not a continuation
      "  b = 2", // same indent as a: a new key
      "      more", // deeper than b: continues b
      "c =",
      "  first",
      "  second",
      "env = A=1,",
      "  B=2", // a continuation may contain "="
      "",
      "",
      "d = last",
    ].join("\n"),
  );
  const sftp = ini.section("sftp")!;
  assert.equal(
    sftp.get("paths"),
    "/usr/lib/sftp-server,\n/usr/libexec/sftp-server,\n\n/usr/lib/openssh/sftp-server",
  );
  assert.deepEqual(sftp.list("paths"), [
    "/usr/lib/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/openssh/sftp-server",
  ]);
  assert.equal(sftp.entry("paths")!.line, 2);
  assert.equal(sftp.get("devices"), "/dev/null");
  const x = ini.section("x")!;
  assert.deepEqual(x.keys(), ["a", "b", "c", "env", "d"]);
  assert.equal(x.get("a"), "1");
  assert.equal(x.get("b"), "2\nmore");
  assert.equal(x.get("c"), "first\nsecond");
  assert.deepEqual(x.list("c"), ["first", "second"], "lists also split on line breaks");
  assert.deepEqual(x.list("env"), ["A=1", "B=2"]);
  assert.equal(x.get("d"), "last", "trailing blank lines are not part of a value");
});

Deno.test("CRLF files, BOM, no trailing newline: values intact", () => {
  const crlf = parse("\uFEFF[s]\r\nshell = /bin/sh\r\npaths = /a,\r\n  /b\r\n");
  assert.equal(crlf.section("s")!.get("shell"), "/bin/sh");
  assert.deepEqual(crlf.section("s")!.list("paths"), ["/a", "/b"]);
  // jailkit's C parser appended 0xFF to a last value without a newline.
  const noNewline = parse("[s]\nexecutables = /usr/bin/printf");
  assert.equal(noNewline.section("s")!.get("executables"), "/usr/bin/printf");
  assert.deepEqual(parse("").names(), []);
  assert.deepEqual(parse("\n\n# only comments\n").names(), []);
  assert.deepEqual(parse("[s]").section("s")!.keys(), []);
});

Deno.test("% is literal by default; pythonPercent reads %% as % and refuses %(", () => {
  const text = "[s]\na = 100%%\nb = 50% off\nc = %%(x)s\n";
  const literal = parse(text).section("s")!;
  assert.equal(literal.get("a"), "100%%");
  assert.equal(literal.get("b"), "50% off");
  assert.equal(literal.get("c"), "%%(x)s");
  assert.equal(parse("[s]\na = %(x)s\n").section("s")!.get("a"), "%(x)s");

  const python = parse(text, { pythonPercent: true }).section("s")!;
  assert.equal(python.get("a"), "100%");
  assert.equal(python.get("b"), "50% off");
  assert.equal(python.get("c"), "%(x)s");
  assert.equal(parse("[s]\na = %%%%\n", { pythonPercent: true }).section("s")!.get("a"), "%%");
  assertIniError(
    () => parse("[s]\nx = 1\npaths = /a,\n  /b%(home)s\n", { pythonPercent: true }),
    "syntax",
    `${F}:3: "%(name)s" interpolation is not supported; write "%%(" for "%("`,
  );
  assertIniError(
    () => parse("[s]\na = %%%(x)s\n", { pythonPercent: true }),
    "syntax",
    /^\/etc\/jailkit\/test\.ini:2: "%\(name\)s" interpolation/,
  );
});

// ---------------------------------------------------------------- syntax errors

Deno.test("syntax errors name file:line", () => {
  const cases: [string, string][] = [
    [
      "[sftp]\ncomment = x\n\n\n\n\n\n\npaths = /a\n\n\npaths = /b\n",
      `${F}:12: duplicate key "paths" in section [sftp] (first at line 9)`,
    ],
    [
      "[s]\nPaths = /a\npaths: /b\n",
      `${F}:3: duplicate key "paths" in section [s] (first at line 2)`,
    ],
    ["[s]\na=1\n[t]\n[ s ]\n", `${F}:4: duplicate section [s] (first at line 1)`],
    ["[DEFAULT]\n[DEFAULT]\n", `${F}:2: duplicate section [DEFAULT] (first at line 1)`],
    [
      "[s]\njust some words\n",
      `${F}:2: expected "key = value", a [section] or a comment, not "just some words"`,
    ],
    ["# c\nkey = value\n[s]\n", `${F}:2: key "key" before any [section]`],
    ["[s]\n= value\n", `${F}:2: missing key before "="`],
    ["[s]\n  : value\n", `${F}:2: missing key before ":"`],
    [
      "[s]\nexec utables = /bin/ls\n",
      `${F}:2: invalid key "exec utables" (letters, digits, "_", ".", "-" only)`,
    ],
    ["[s]\nkey/x = 1\n", `${F}:2: invalid key "key/x" (letters, digits, "_", ".", "-" only)`],
    // The Kelvin sign lower-cases to "k": a look-alike key must not pass as "key".
    ["[s]\n\u212Aey = 1\n", `${F}:2: invalid key "\u212Aey" (letters, digits, "_", ".", "-" only)`],
    ["[s\na = 1\n", `${F}:1: unterminated section header "[s"`],
    ["[s] junk\n", `${F}:1: text after section header: "junk"`],
    ["[s]]\n", `${F}:1: text after section header: "]"`],
    ["[]\n", `${F}:1: empty section name`],
    ["[   ]\n", `${F}:1: empty section name`],
    ["[a[b]\n", `${F}:1: "[" in section name "a[b"`],
    [
      "[alice]\nexecutables = /bin/ls\n  [bob]\nexecutables = /bin/sh\n",
      `${F}:3: indented section header "[bob]"; remove the indentation`,
    ],
    ["[s]\na = 1\rb = 2\n", `${F}:2: carriage return inside a line`],
    ["[s]\na = 1\r\r\n", `${F}:2: carriage return inside a line`],
  ];
  for (const [text, message] of cases) assertIniError(() => parse(text), "syntax", message);
});

Deno.test("an indented section header after a comment or header is a header", () => {
  // Only where Python would have folded it into a value is it refused.
  assert.deepEqual(parse("  [a]\n  [b]\nx=1\n# c\n").names(), ["a", "b"]);
});

Deno.test("NUL and control characters: not a text file, with the line", () => {
  assertIniError(
    () => parse("[s]\na = 1\nb = x\0y\n"),
    "not-text",
    `${F}:3: not a text file (control character 0x00)`,
  );
  assertIniError(
    () => parse("[s]\na = \x1b[31mred\n"),
    "not-text",
    `${F}:2: not a text file (control character 0x1b)`,
  );
  assertIniError(
    () => parse("[s]\n# \x7f in a comment\n"),
    "not-text",
    `${F}:2: not a text file (control character 0x7f)`,
  );
  assertIniError(
    () => parse("[s]\f\n"),
    "not-text",
    `${F}:1: not a text file (control character 0x0c)`,
  );
  assert.equal(parse("[s]\na =\tb\tc\t\n").section("s")!.get("a"), "b\tc", "tab is fine");
});

Deno.test("oversized text is refused by parseIni itself", () => {
  assertIniError(
    () => parse("#".repeat(MAX_INI_BYTES + 1)),
    "too-large",
    `${F}: too large (over ${MAX_INI_BYTES} bytes)`,
  );
  assert.equal(parse("[s]\n" + "#".repeat(MAX_INI_BYTES - 4)).names().length, 1);
});

// ---------------------------------------------------------------- accessors

Deno.test("bool accepts 1/0 yes/no true/false on/off in any case, else names file:line", () => {
  const words = ["1", "yes", "TRUE", "On", "0", "No", "false", "OFF"];
  const s = parse("[s]\n" + words.map((w, i) => `k${i} = ${w}`).join("\n") + "\n").section("s")!;
  assert.deepEqual(words.map((_, i) => s.bool(`k${i}`, false)), [
    true,
    true,
    true,
    true,
    false,
    false,
    false,
    false,
  ]);
  const t = parse("[alice]\nempty =\nrelax_home_owner = 2\nx = -1\ny = enabled\n").section(
    "alice",
  )!;
  assert.equal(t.bool("absent", true), true);
  assert.equal(t.bool("absent", false), false);
  assert.equal(t.bool("empty", true), true, "empty means not set");
  assertIniError(
    () => t.bool("relax_home_owner", false),
    "value",
    `${F}:3: key "relax_home_owner" in section [alice] ` +
      `must be 1/0, yes/no, true/false or on/off, not "2"`,
  );
  assertIniError(
    () => t.bool("X", false),
    "value",
    /^\/etc\/jailkit\/test\.ini:4: key "x" .* not "-1"$/,
  );
  assertIniError(() => t.bool("y", false), "value", /:5: key "y" in section \[alice\]/);
});

Deno.test("int: decimal with bounds, errors name file:line", () => {
  const s = parse(
    "[sock]\nbase = 1024\nzero = 0\nneg = -5\nplus = +7\nbig = 99999999999999999999\n" +
      "hex = 0x10\nfrac = 1.5\nspace = 1 2\nlead = 010\nnegzero = -0\n",
  ).section("sock")!;
  assert.equal(s.int("base", 1), 1024);
  assert.equal(s.int("zero", 1), 0);
  assert.equal(s.int("plus", 1), 7);
  assert.equal(s.int("lead", 1), 10, "decimal, not octal");
  assert.ok(Object.is(s.int("negzero", 1, { min: -1 }), 0));
  assert.equal(s.int("neg", 0, { min: -10 }), -5);
  assert.equal(s.int("absent", 511), 511);
  assert.equal(s.int("base", 1, { min: 1, max: 1024 }), 1024);
  assertIniError(
    () => s.int("neg", 0),
    "value",
    `${F}:4: key "neg" in section [sock] ` +
      `must be a decimal integer from 0 to ${Number.MAX_SAFE_INTEGER}, not "-5"`,
  );
  assertIniError(
    () => s.int("base", 1, { max: 1000 }),
    "value",
    `${F}:2: key "base" in section [sock] must be a decimal integer from 0 to 1000, not "1024"`,
  );
  assertIniError(() => s.int("base", 1, { min: 2000 }), "value", /:2: .* from 2000 to /);
  for (const [key, line] of [["big", 6], ["hex", 7], ["frac", 8], ["space", 9]] as const) {
    assertIniError(
      () => s.int(key, 0),
      "value",
      new RegExp(`^/etc/jailkit/test\\.ini:${line}: key "${key}"`),
    );
  }
});

Deno.test("octal: 022, 0022 and 22 are 0o22; above 0777 or non-octal refused", () => {
  const s = parse(
    "[u]\na = 022\nb = 0022\nc = 22\nd = 0\ne = 777\nf = 1000\ng = 8\nh = 0o22\n" +
      "i = -22\nj = 0000000000000000000000777\nk = 7777777777777777777777777777\n",
  ).section("u")!;
  assert.equal(s.octal("a", 0), 0o22);
  assert.equal(s.octal("b", 0), 0o22);
  assert.equal(s.octal("c", 0), 0o22);
  assert.equal(s.octal("d", 0o77), 0);
  assert.equal(s.octal("e", 0), 0o777);
  assert.equal(s.octal("j", 0), 0o777);
  assert.equal(s.octal("absent", 0o22), 0o22);
  assert.equal(s.octal("f", 0, 0o7777), 0o1000);
  assertIniError(
    () => s.octal("f", 0),
    "value",
    `${F}:7: key "f" in section [u] must be an octal number from 0 to 0777, not "1000"`,
  );
  for (const [key, line] of [["g", 8], ["h", 9], ["i", 10], ["k", 12]] as const) {
    assertIniError(
      () => s.octal(key, 0),
      "value",
      new RegExp(`^/etc/jailkit/test\\.ini:${line}: key "${key}" .* octal`),
    );
  }
});

Deno.test("float: decimal numbers with bounds, no NaN/Infinity/hex", () => {
  const s = parse(
    "[/dev/log]\ninterval = 2.0\nb = .5\nc = 3\nd = 1e2\ne = nan\nf = Infinity\n" +
      "g = 0x1\nh = 1.2.3\ni = -2.5\nj = 1e999\n",
  ).section("/dev/log")!;
  assert.equal(s.float("interval", 5), 2);
  assert.equal(s.float("b", 5), 0.5);
  assert.equal(s.float("c", 5), 3);
  assert.equal(s.float("d", 5), 100);
  assert.equal(s.float("i", 5), -2.5);
  assert.equal(s.float("absent", 5), 5);
  assert.equal(s.float("interval", 5, { min: 0.1, max: 60 }), 2);
  assertIniError(
    () => s.float("i", 5, { min: 0.1, max: 60 }),
    "value",
    `${F}:10: key "i" in section [/dev/log] must be a decimal number from 0.1 to 60, not "-2.5"`,
  );
  assertIniError(
    () => s.float("d", 5, { max: 60 }),
    "value",
    /:5: .* must be a decimal number of at most 60, not "1e2"$/,
  );
  assertIniError(
    () => s.float("i", 5, { min: 0 }),
    "value",
    /:10: .* must be a decimal number of at least 0, not "-2.5"$/,
  );
  for (const [key, line] of [["e", 6], ["f", 7], ["g", 8], ["h", 9], ["j", 11]] as const) {
    assertIniError(
      () => s.float(key, 0),
      "value",
      new RegExp(`^/etc/jailkit/test\\.ini:${line}: key "${key}" .* must be a decimal number, not`),
    );
  }
});

Deno.test("entries are read-only snapshots", () => {
  const s = parse("[s]\na = 1\n").section("s")!;
  const e = s.entry("a")!;
  assert.throws(() => {
    (e as { value: string }).value = "2";
  }, TypeError);
  assert.equal(s.get("a"), "1");
});

Deno.test("error messages quote and shorten hostile values", () => {
  const long = "y".repeat(5000);
  assertIniError(
    () => parse(`[s]\nb = ${long}"\\\n`).section("s")!.bool("b", false),
    "value",
    new RegExp(`^${F}:2: key "b" in section \\[s\\] must be .* not "y{80}…"$`),
  );
  assertIniError(
    () => parse('[s]\nb = a"b\n').section("s")!.bool("b", false),
    "value",
    /not "a\\"b"$/,
  );
});

// ---------------------------------------------------------------- helpers

Deno.test("sectionForUser: user, then groups in the given order, then DEFAULT", () => {
  const ini = parse(
    "[alice]\nx=alice\n[group staff]\nx=staff\n[group users]\nx=users\n[DEFAULT]\nx=default\n" +
      "[group  wide]\nx=wide\n",
  );
  const pick = (user: string, groups: string[]) => sectionForUser(ini, user, groups)?.get("x");
  assert.equal(pick("alice", ["users"]), "alice");
  assert.equal(pick("bob", ["users", "staff"]), "users", "primary group first");
  assert.equal(pick("bob", ["staff", "users"]), "staff");
  assert.equal(pick("bob", ["nogroup", "users"]), "users");
  assert.equal(pick("bob", ["nogroup"]), "default");
  assert.equal(pick("bob", []), "default");
  assert.equal(pick("bob", ["wide"]), "default", "exactly one space between group and name");
  assert.equal(pick("", [""]), "default");
  const noDefault = parse("[alice]\nx=1\n");
  assert.equal(sectionForUser(noDefault, "bob", ["users"]), undefined);
});

Deno.test("unknownKeys lists keys outside the allowed set, with lines, in file order", () => {
  const s = parse("[bob]\nexecutables=/bin/ls\nexecutable=/bin/sh\nPaths=/bin\numask=022\nenv=X\n")
    .section("bob")!;
  assert.deepEqual(unknownKeys(s, ["executables", "PATHS", "umask"]), [
    { key: "executable", line: 3 },
    { key: "env", line: 6 },
  ]);
  assert.deepEqual(unknownKeys(s, ["executables", "executable", "paths", "umask", "env"]), []);
});

// ---------------------------------------------------------------- real files

const SHIPPED = [
  "jk_check",
  "jk_chrootsh",
  "jk_init",
  "jk_lsh",
  "jk_socketd",
  "jk_uchroot",
  "jk_update",
];

Deno.test("every /etc/jailkit/*.ini parses (Debian's jailkit 2.23 files)", async () => {
  const found = [...Deno.readDirSync("/etc/jailkit")]
    .filter((e) => e.name.endsWith(".ini")).map((e) => e.name.slice(0, -4)).sort();
  for (const name of SHIPPED) assert.ok(found.includes(name), `${name}.ini is installed`);
  for (const name of found) {
    const ini = await readIniFile(`/etc/jailkit/${name}.ini`, { pythonPercent: true });
    assert.ok(ini instanceof IniFile);
    assert.equal(ini.file, `/etc/jailkit/${name}.ini`);
  }
});

Deno.test("shipped jk_init.ini, jk_check.ini and jk_update.ini read as expected", async () => {
  const init = await readIniFile("/etc/jailkit/jk_init.ini", { pythonPercent: true });
  assert.equal(init.names().length, 28);
  assert.deepEqual(init.names().slice(0, 3), ["uidbasics", "netbasics", "logbasics"]);
  const sftp = init.section("sftp")!;
  assert.deepEqual(sftp.list("paths"), [
    "/usr/lib/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/misc/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/openssh/sftp-server",
  ]);
  assert.deepEqual(sftp.list("includesections"), ["netbasics", "uidbasics"]);
  assert.deepEqual(sftp.list("devices"), ["/dev/urandom", "/dev/null"]);
  assert.equal(sftp.get("comment"), "ssh secure ftp");
  assert.deepEqual(init.section("openvpn")!.list("users"), ["root", "nobody"]);
  assert.equal(init.section("openvpn")!.bool("need_logsocket", false), true);
  assert.deepEqual(init.section("ping")!.list("paths_w_setuid"), ["/bin/ping"]);
  assert.equal(init.has("xterm"), false, "commented-out section");
  assert.equal(
    init.section("uidbasics")!.list("paths").length,
    12,
    "the Solaris comment is not read",
  );

  const check = await readIniFile("/etc/jailkit/jk_check.ini", { pythonPercent: true });
  const jail = check.section("/home/testchroot")!;
  assert.deepEqual(jail.list("ignorepathoncompare"), [
    "/home/testchroot/home",
    "/home/testchroot/etc",
  ]);
  assert.deepEqual(jail.list("ignoresetuidexecuteforothers"), []);
  assert.equal(jail.has("ignorepatheverywhere"), false);

  const update = await readIniFile("/etc/jailkit/jk_update.ini", { pythonPercent: true });
  const testjail = update.section("/home/testjail")!;
  assert.equal(testjail.bool("hardlinks", true), false);
  assert.deepEqual(testjail.list("skips"), ["/usr/bin/myscript"]);
  assert.deepEqual(testjail.list("directories"), ["/usr"]);
});

Deno.test("shipped C-dialect files: their commented examples parse", async () => {
  // Other tests may add live sections to these files, so read only the
  // comment lines, and uncomment the "[section]" and "key =" ones among them.
  const uncomment = async (name: string) =>
    parseIni(
      (await Deno.readTextFile(`/etc/jailkit/${name}.ini`)).split("\n")
        .filter((line) => line.startsWith("#"))
        .map((line) => line.replace(/^#(?=\[|[a-z_]+ *=)/, ""))
        .join("\n"),
      `${name}.ini`,
    );
  const chrootsh = await uncomment("jk_chrootsh");
  assert.deepEqual(chrootsh.names(), ["test", "group users", "DEFAULT", "group jail"]);
  assert.deepEqual(chrootsh.section("test")!.list("env"), ["DISPLAY", "XAUTHORITY"]);
  assert.equal(sectionForUser(chrootsh, "eve", ["jail"])!.bool("relax_home_owner", false), true);
  assert.equal(sectionForUser(chrootsh, "eve", ["x"])!.bool("relax_home_group", false), true);
  assert.equal(
    sectionForUser(chrootsh, "eve", ["x"])!.bool("relax_home_group_permissions", false),
    false,
  );
  const lsh = await uncomment("jk_lsh");
  const users = lsh.section("group users")!;
  assert.deepEqual(users.list("environment"), ["HELIX_PATH=/opt/RealPlayer/", "TMP=/tmp/"]);
  assert.equal(lsh.section("test")!.octal("umask", 0), 0o2);
  assert.equal(lsh.section("test")!.bool("allow_word_expansion", true), false);
  const socketd = await uncomment("jk_socketd");
  const log = socketd.section("/home/testchroot/dev/log")!;
  assert.deepEqual([log.int("base", 0), log.int("peak", 0), log.float("interval", 0)], [
    1024,
    10240,
    2,
  ]);
  const uchroot = await uncomment("jk_uchroot");
  assert.deepEqual(uchroot.section("john")!.list("allowed_jails"), [
    "/srv/johnjail",
    "/srv/commonjail",
  ]);
});

Deno.test("readIniFile: CRLF, no trailing newline, errors name the path", async () => {
  await withScratch(async (dir) => {
    const crlf = join(dir, "crlf.ini");
    await Deno.writeTextFile(crlf, "[s]\r\nexecutables = /usr/bin/printf\r\n");
    assert.deepEqual((await readIniFile(crlf)).section("s")!.list("executables"), [
      "/usr/bin/printf",
    ]);

    const last = join(dir, "last.ini");
    await Deno.writeTextFile(last, "[s]\nexecutables = /usr/bin/printf");
    assert.equal((await readIniFile(last)).section("s")!.get("executables"), "/usr/bin/printf");

    const dup = join(dir, "dup.ini");
    await Deno.writeTextFile(dup, "[s]\na=1\na=2\n");
    await assertIniErrorAsync(
      () => readIniFile(dup),
      "syntax",
      `${dup}:3: duplicate key "a" in section [s] (first at line 2)`,
    );
  });
});

Deno.test("readIniFile: missing vs unreadable vs not a regular file", async () => {
  await withScratch(async (dir) => {
    const missing = join(dir, "nope.ini");
    await assertIniErrorAsync(() => readIniFile(missing), "missing", `${missing}: no such file`);
    assert.equal(await readIniFileIfPresent(missing), undefined);
    const dangling = join(dir, "dangling.ini");
    await Deno.symlink(missing, dangling);
    await assertIniErrorAsync(() => readIniFile(dangling), "missing", `${dangling}: no such file`);

    await assertIniErrorAsync(() => readIniFile(dir), "unreadable", `${dir}: not a regular file`);
    await assertIniErrorAsync(
      () => readIniFileIfPresent(dir),
      "unreadable",
      `${dir}: not a regular file`,
    );
    const notDir = join(dir, "file.ini");
    await Deno.writeTextFile(notDir, "[s]\n");
    await assertIniErrorAsync(
      () => readIniFile(join(notDir, "x.ini")),
      "unreadable",
      /^\/var\/lib\/jktest-ini-[^:]+\/file\.ini\/x\.ini: cannot read: /,
    );
    assert.deepEqual((await readIniFileIfPresent(notDir))!.names(), ["s"]);

    // A FIFO must be refused, not waited on (opening it would block).
    const fifo = join(dir, "fifo.ini");
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success);
    await assertIniErrorAsync(() => readIniFile(fifo), "unreadable", `${fifo}: not a regular file`);
    await assertIniErrorAsync(
      () => readIniFile("/dev/zero"),
      "unreadable",
      "/dev/zero: not a regular file",
    );
  });
});

Deno.test("readIniFile: a file it may not read is 'unreadable', not 'missing'", async () => {
  // Root ignores mode bits, so deny the read with Deno's permissions in a child.
  await withScratch(async (dir) => {
    const ini = join(dir, "secret.ini");
    await Deno.writeTextFile(ini, "[s]\n");
    const src = new URL("../src/", import.meta.url).pathname;
    const script = join(dir, "probe.ts");
    await Deno.writeTextFile(
      script,
      `import { IniError, readIniFile } from "${src}ini.ts";
      try { await readIniFile(${JSON.stringify(ini)}); console.log("read"); }
      catch (e) {
        console.log(e instanceof IniError ? e.reason + "|" + e.message : "other " + e);
      }`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-prompt", `--allow-read=${src},${script}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assert.match(text, new RegExp(`^unreadable\\|${ini}: cannot read: `), text);
  });
});

Deno.test("readIniFile: 2 MiB file, NUL bytes and invalid UTF-8 are refused", async () => {
  await withScratch(async (dir) => {
    const big = join(dir, "big.ini");
    await Deno.writeTextFile(big, "[s]\n" + "# padding\n".repeat(2 * 1024 * 1024 / 10));
    await assertIniErrorAsync(
      () => readIniFile(big),
      "too-large",
      new RegExp(`^${big}: too large \\(\\d+ bytes, limit ${MAX_INI_BYTES}\\)$`),
    );
    const exact = join(dir, "exact.ini");
    await Deno.writeTextFile(exact, "[s]\n" + "#".repeat(MAX_INI_BYTES - 4));
    assert.deepEqual((await readIniFile(exact)).names(), ["s"], "exactly the limit is fine");

    const nul = join(dir, "nul.ini");
    await Deno.writeFile(nul, new TextEncoder().encode("[s]\na = 1\nb = \0\n"));
    await assertIniErrorAsync(
      () => readIniFile(nul),
      "not-text",
      `${nul}:3: not a text file (NUL byte)`,
    );

    const elf = join(dir, "elf.ini");
    await Deno.copyFile("/bin/true", elf);
    await assertIniErrorAsync(() => readIniFile(elf), "not-text", /: not a text file/);

    for (
      const bytes of [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [
        0xf8,
        0x88,
        0x80,
        0x80,
        0x80,
      ]]
    ) {
      const bad = join(dir, "bad.ini");
      await Deno.writeFile(
        bad,
        new Uint8Array([...new TextEncoder().encode("[s]\na = "), ...bytes, 0x0a]),
      );
      await assertIniErrorAsync(
        () => readIniFile(bad),
        "not-text",
        `${bad}: not a text file (invalid UTF-8)`,
      );
    }
    const bom = join(dir, "bom.ini");
    await Deno.writeFile(
      bom,
      new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode("[s]\na=1\n")]),
    );
    assert.deepEqual((await readIniFile(bom)).names(), ["s"]);
  });
});

// ---------------------------------------------------------------- hostile input

Deno.test("100k-line file parses fast; pathological 1 MiB inputs stay linear", () => {
  const lines = ["[DEFAULT]"];
  for (let i = 0; i < 100_000; i++) {
    lines.push(i % 10 === 0 ? `[s${i}]` : i % 3 === 0 ? `#${i}` : `k${i}=${i % 7},x`);
  }
  const text = lines.join("\n");
  assert.ok(text.length < MAX_INI_BYTES);
  let start = performance.now();
  const ini = parse(text);
  let elapsed = performance.now() - start;
  assert.equal(ini.names().length, 10_001);
  assert.ok(elapsed < 2000, `100k lines took ${elapsed.toFixed(0)} ms`);

  const n = MAX_INI_BYTES - 16;
  const hostile: [string, ParseOptions][] = [
    ["[s]\na = " + "%".repeat(n) + "(", { pythonPercent: true }],
    ["[s]\na = " + "%%".repeat(n / 2), { pythonPercent: true }],
    ["[s]\na = " + "1".repeat(n), {}],
    ["[s]\na =" + "\n ".repeat(n / 2), {}],
    ["[s]\na = 1" + "\n#".repeat(n / 2), {}],
    ["[" + "x".repeat(n) + "]", {}],
    ["[s]\n" + "k".repeat(n) + " = 1", {}],
    ["[s]\n" + " ".repeat(n) + "a", {}],
    ["[s]\n" + "[".repeat(n), {}],
    ["[s]\nx" + "=".repeat(n), {}],
  ];
  for (const [text, options] of hostile) {
    start = performance.now();
    try {
      const s = parse(text, options).sections()[0];
      for (const key of s?.keys() ?? []) {
        for (const read of [() => s.list(key), () => s.float(key, 0), () => s.int(key, 0)]) {
          try {
            read();
          } catch (e) {
            assert.ok(e instanceof IniError);
          }
        }
      }
    } catch (e) {
      assert.ok(e instanceof IniError, String(e));
    }
    elapsed = performance.now() - start;
    assert.ok(
      elapsed < 2000,
      `${JSON.stringify(text.slice(0, 20))}… took ${elapsed.toFixed(0)} ms`,
    );
  }
});

/** Pieces of INI-ish text; a fuzz line is a few of them. */
const TOKENS = [
  "[",
  "]",
  "[s]",
  "[DEFAULT]",
  "[group users]",
  "[ x ]",
  "=",
  ":",
  " = ",
  "#",
  ";",
  "%",
  "%%",
  "%(x)s",
  "\r",
  " ",
  "\t",
  "paths",
  "PATHS",
  "umask",
  "022",
  "1",
  "0",
  "yes",
  "on",
  "-1",
  "1e9",
  ".5",
  "/usr/bin/ls",
  ",",
  ", ,",
  "\0",
  "\x1b",
  "\u00a0",
  "\uFEFF",
  "é",
  "\uD800",
  "executables",
  "relax_home_group",
];

/** Line shapes, so that a good share of inputs get past the syntax check. */
const SHAPES = ["key = TOK", "[TOK]", "  TOK", "TOK", "# TOK", "", "TOK = TOK, TOK"];

/**
 * One random input: lines of INI-ish shapes filled with tokens and now and
 * then a random UTF-16 code unit (lone surrogates included). `bytes` is its
 * UTF-8 encoding with random raw bytes spliced in.
 */
function fuzzCase(rand: () => number): { text: string; bytes: Uint8Array } {
  const pick = <T>(list: readonly T[]) => list[Math.floor(rand() * list.length)];
  const encoder = new TextEncoder();
  let text = rand() < 0.7 ? "[s]\n" : "";
  const bytes: number[] = [...encoder.encode(text)];
  const lineCount = Math.floor(rand() * 12);
  for (let i = 0; i < lineCount; i++) {
    let line = pick(SHAPES).replace(/TOK/g, () => {
      let tok = "";
      const n = 1 + Math.floor(rand() * 3);
      for (let j = 0; j < n; j++) tok += pick(TOKENS);
      return tok;
    });
    if (rand() < 0.05) line += String.fromCharCode(Math.floor(rand() * 0x10000));
    line += rand() < 0.1 ? "\r\n" : "\n";
    text += line;
    bytes.push(...encoder.encode(line));
    if (rand() < 0.05) bytes.push(Math.floor(rand() * 256));
  }
  return { text, bytes: new Uint8Array(bytes) };
}

/**
 * Parses and exercises every accessor; anything but an IniError escaping
 * fails. Returns whether the text parsed.
 */
function exercise(text: string, options: ParseOptions): boolean {
  let ini: IniFile;
  try {
    ini = parse(text, options);
  } catch (e) {
    if (e instanceof IniError) {
      assert.ok(e.message.startsWith(`${F}:`) && !e.message.includes("\n"), e.message);
      return false;
    }
    throw e;
  }
  for (const s of ini.sections()) {
    sectionForUser(ini, s.name, [s.name]);
    unknownKeys(s, ["paths"]);
    for (const key of s.keys()) {
      s.get(key);
      s.list(key);
      for (
        const read of [
          () => s.bool(key, false),
          () => s.int(key, 0, { min: -5, max: 5 }),
          () => s.octal(key, 0),
          () => s.float(key, 0),
        ]
      ) {
        try {
          read();
        } catch (e) {
          if (!(e instanceof IniError)) throw e;
          assert.match(e.message, /^\/etc\/jailkit\/test\.ini:\d+: key "/);
        }
      }
    }
  }
  return true;
}

Deno.test("fuzz: 3000 seeded random inputs either parse or throw IniError", async () => {
  const rng = new Rng(testSeed(0x1a11c17));
  const rand = () => rng.next();
  const lossy = new TextDecoder();
  let parsed = 0;
  for (let i = 0; i < 3000; i++) {
    const { text, bytes } = fuzzCase(rand);
    const options = { pythonPercent: rand() < 0.5 };
    for (const input of [text, lossy.decode(bytes)]) {
      try {
        if (exercise(input, options)) parsed++;
      } catch (e) {
        throw new Error(`fuzz case ${i} failed: ${JSON.stringify(input)}: ${e}`);
      }
    }
  }
  // Both outcomes must be common, or the fuzzer is not reaching the accessors.
  assert.ok(parsed > 600 && parsed < 5400, `${parsed} of 6000 inputs parsed`);
  // A slice of the cases through the file reader, with the raw bytes.
  await withScratch(async (dir) => {
    const path = join(dir, "fuzz.ini");
    for (let i = 0; i < 200; i++) {
      const { bytes } = fuzzCase(rand);
      await Deno.writeFile(path, bytes);
      try {
        await readIniFile(path, { pythonPercent: i % 2 === 0 });
      } catch (e) {
        if (!(e instanceof IniError)) {
          throw new Error(`fuzz file ${i} failed: ${JSON.stringify([...bytes])}: ${e}`);
        }
        assert.ok(e.message.startsWith(`${path}:`), e.message);
      }
    }
  });
});
