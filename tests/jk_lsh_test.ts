/**
 * jk_lsh: the tokenizer, the argument grammars and the policy as units; then
 * the installed jk_lsh run as a real user, on the host and inside a jail, with
 * allowed commands (exit codes, signals, umask, environment, log lines) and
 * refused ones (with jailkit's exit codes).
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseIni } from "../src/ini.ts";
import { checkArguments, GrammarError } from "../src/lsh/grammar.ts";
import {
  childEnvironment,
  EXIT_NO_EXECUTABLES,
  policyFromSection,
  resolveProgram,
} from "../src/lsh/policy.ts";
import {
  type Expansion,
  MAX_COMMAND_BYTES,
  quoteWords,
  TokenError,
  tokenize,
} from "../src/lsh/tokens.ts";
import { JkError } from "../src/cli.ts";
import { findTool, LSH_DEFAULT_FENCE, lshFence, lshLogSocket } from "../src/tools.ts";
import {
  copyWithLibs,
  createUser,
  DatagramListener,
  finishChild,
  runCommand,
  type RunResult,
  runTool,
  scratchDir,
  testSite,
  type TestUser,
  toolPathUnderTest,
} from "./harness.ts";

const root = Deno.uid() === 0;

// ---------------------------------------------------------------------------
// Tokenizer

function refusedWith(command: string, reason: string, expansion?: Expansion) {
  assert.throws(
    () => tokenize(command, { expansion }),
    (e: unknown) => e instanceof TokenError && e.reason === reason,
    `${JSON.stringify(command)} should be refused (${reason})`,
  );
}

Deno.test("tokenize: spaces, quotes and backslashes as a POSIX shell splits them", () => {
  assert.deepEqual(tokenize("  scp   -t  dir  "), ["scp", "-t", "dir"]);
  assert.deepEqual(tokenize(String.raw`rsync --server -e.LsfxCIvu . dest\ dir/it\'s`), [
    "rsync",
    "--server",
    "-e.LsfxCIvu",
    ".",
    "dest dir/it's",
  ]);
  assert.deepEqual(tokenize("git-upload-pack '/srv/a b.git'"), ["git-upload-pack", "/srv/a b.git"]);
  assert.deepEqual(tokenize(String.raw`x "a \"b\" \$c \n" ''`), ["x", 'a "b" $c \\n', ""]);
  assert.deepEqual(tokenize(String.raw`x a'b'"c"\d`), ["x", "abcd"]);
  // Not a shell: no globbing, no braces, no comments, no tilde unless expanding.
  assert.deepEqual(tokenize("scp -f *.txt {a,b} #c ~/x a=b !x"), [
    "scp",
    "-f",
    "*.txt",
    "{a,b}",
    "#c",
    "~/x",
    "a=b",
    "!x",
  ]);
  assert.deepEqual(tokenize("a $ b$"), ["a", "$", "b$"]); // a lone $ is literal, as in sh
  assert.deepEqual(tokenize(""), []);
});

Deno.test("quoteWords: what the log shows reads back as the same words", () => {
  const words = ["rsync", "--server", "dest dir/", "it's", "", "$(id)", "a;b", "--x=1"];
  assert.equal(quoteWords(words), "rsync --server 'dest dir/' 'it'\\''s' '' '$(id)' 'a;b' --x=1");
  assert.deepEqual(tokenize(quoteWords(words)), words);
});

Deno.test("tokenize: refuses operators, substitutions and syntax errors", () => {
  for (const c of ["a;b", "a|b", "a&&b", "a&", "a>b", "a<b", "(a)", "a ; b", "a||b"]) {
    refusedWith(c, "operator");
  }
  for (const c of ["a $(id)", "a `id`", 'a "$(id)"', 'a "`id`"', "a $((1+1))"]) {
    refusedWith(c, "substitution");
  }
  for (const c of ["a 'b", 'a "b', "a b\\", `a "b\\"`]) refusedWith(c, "syntax");
  // Quoted, they are plain text.
  assert.deepEqual(tokenize(`x ';|&()<>' "a;b" \\; '$(id)' '\`id\`'`), [
    "x",
    ";|&()<>",
    "a;b",
    ";",
    "$(id)",
    "`id`",
  ]);
});

Deno.test("tokenize: refuses control characters, non-UTF-8 and over-long commands", () => {
  for (const c of ["a\nb", "a\rb", "a\tb", "a\x00b", "a\x1bb", "a\x7fb", "a\u0085b", "a\u2028"]) {
    refusedWith(c, "control");
  }
  refusedWith("a '\n' b", "control"); // even quoted
  refusedWith("scp -t \ufffd", "encoding");
  refusedWith("a ".repeat(MAX_COMMAND_BYTES), "length");
  assert.deepEqual(tokenize("x " + "é".repeat(1000)).length, 2); // multibyte is fine
});

Deno.test("tokenize: without expansion, $NAME and ${…} are refused, not passed on", () => {
  for (const c of ["scp -t $HOME", 'scp -t "${HOME}"', "a $1", "a $$", "a $?"]) {
    refusedWith(c, "expansion");
  }
  assert.deepEqual(tokenize("a '$HOME' \\$HOME"), ["a", "$HOME", "$HOME"]);
});

Deno.test("tokenize: expansion is ~, ~user, $NAME and ${NAME} only, never a command", () => {
  const calls: string[] = [];
  const expansion: Expansion = {
    variable: (name) => ({ HOME: "/", ME: "alice", SP: "a b" } as Record<string, string>)[name],
    home: (user) => {
      calls.push(user);
      return user === "" ? "/home/alice" : user === "bob" ? "/home/bob" : undefined;
    },
  };
  const t = (c: string) => tokenize(c, { expansion });
  assert.deepEqual(t("scp -f ~ ~/x ~bob/y a~ '~' \\~"), [
    "scp",
    "-f",
    "/home/alice",
    "/home/alice/x",
    "/home/bob/y",
    "a~",
    "~",
    "~",
  ]);
  assert.deepEqual(t('x $ME ${ME}x "$ME/$SP" $SP'), ["x", "alice", "alicex", "alice/a b", "a b"]);
  refusedWith("x ~carol", "undefined", expansion);
  refusedWith("x $NOPE", "undefined", expansion);
  refusedWith("x ${ME:-y}", "expansion", expansion);
  refusedWith("x $1", "expansion", expansion);
  refusedWith("x $(id)", "substitution", expansion);
  refusedWith("x `id`", "substitution", expansion);
  refusedWith("x $ME;id", "operator", expansion);
});

// ---------------------------------------------------------------------------
// Grammars

function refused(program: string, words: string[], pattern: RegExp, sftp?: string[]) {
  assert.throws(
    () => checkArguments(program, words, { sftpServerFlags: sftp }),
    (e: unknown) => e instanceof GrammarError && pattern.test(e.message),
    `${words.join(" ")} should be refused with ${pattern}`,
  );
}

Deno.test("grammar scp: server mode only, safe flags, local paths, rebuilt with --", () => {
  const scp = "/usr/bin/scp";
  assert.deepEqual(checkArguments(scp, ["scp", "-t", "dest dir/"]), ["-t", "--", "dest dir/"]);
  assert.deepEqual(checkArguments(scp, ["scp", "-r", "-p", "-d", "-f", "a", "b"]), [
    "-d",
    "-f",
    "-p",
    "-r",
    "--",
    "a",
    "b",
  ]);
  assert.deepEqual(checkArguments(scp, ["scp", "-vt", "--", "-x"]), ["-t", "-v", "--", "-x"]);
  assert.deepEqual(checkArguments(scp, ["scp", "-t", "./a:b"]), ["-t", "--", "./a:b"]);
  refused(scp, ["scp", "-S", "/bin/sh", "-t", "x"], /option -S/);
  refused(scp, ["scp", "-tS/bin/sh", "x"], /option -S/);
  refused(scp, ["scp", "-o", "ProxyCommand=sh", "-f", "x"], /option -o/);
  for (const flag of ["-F", "-J", "-P", "-3", "-i", "-l", "-T", "-O", "-s"]) {
    refused(scp, ["scp", flag, "-t", "x"], /is not allowed/);
  }
  refused(scp, ["scp", "a", "host:b"], /exactly one of -t/); // client mode
  refused(scp, ["scp", "-t", "host:x"], /remote target/);
  refused(scp, ["scp", "-f", "u@h:x"], /remote target/);
  refused(scp, ["scp", "-f", "h:/x"], /remote target/);
  refused(scp, ["scp", "-t", "-f", "x"], /exactly one of -t/);
  refused(scp, ["scp", "-t", "a", "b"], /exactly one target/);
  refused(scp, ["scp", "-t"], /exactly one target/);
  refused(scp, ["scp", "-f"], /at least one source/);
});

Deno.test("grammar rsync: --server with an allowlist, paths behind --", () => {
  const rsync = "/usr/bin/rsync";
  const ok = (words: string) => checkArguments(rsync, ["rsync", ...words.split(" ")]);
  assert.deepEqual(ok("--server -vlogDtpre.iLsfxCIvu . dest/"), [
    "--server",
    "-vlogDtpre.iLsfxCIvu",
    "--",
    ".",
    "dest/",
  ]);
  assert.deepEqual(ok("--server --sender -vlogDtprze.iLsfxCIvu --timeout=30 . a b"), [
    "--server",
    "--sender",
    "-vlogDtprze.iLsfxCIvu",
    "--timeout=30",
    "--",
    ".",
    "a",
    "b",
  ]);
  // What rsync 3.5 clients send: separate values, -B glued, the e. protocol string.
  assert.deepEqual(
    ok("--server -logDtpre.iLsfxCIvu -B2048 --partial-dir .p --link-dest ../x --delete . d/"),
    [
      "--server",
      "-logDtpre.iLsfxCIvu",
      "-B2048",
      "--partial-dir=.p",
      "--link-dest=../x",
      "--delete",
      "--",
      ".",
      "d/",
    ],
  );
  assert.deepEqual(ok("--server -e.LsfxCIvu -- . -x"), [
    "--server",
    "-e.LsfxCIvu",
    "--",
    ".",
    "-x",
  ]);
  assert.deepEqual(ok("--version"), ["--version"]);

  refused(rsync, ["rsync", "-e", "sh", "h:x", "."], /only the server side/);
  refused(rsync, ["rsync", "--daemon"], /only the server side/);
  refused(rsync, ["rsync", "--sender", "--server", ".", "x"], /only the server side/);
  const no = (words: string, pattern: RegExp) =>
    refused(rsync, ["rsync", ...words.split(" ")], pattern);
  no("--server -e sh . x", /option -e/);
  no("--server -vesh . x", /option -e/);
  no("--server -ve . x", /option -e/);
  no("--server --rsh=sh . x", /option --rsh/);
  no("--server --rs=sh . x", /option --rs /);
  no("--server --rsync-path=sh . x", /option --rsync-path/);
  no("--server --daemon . x", /option --daemon/);
  no("--server --config=/etc/x . x", /option --config/);
  no("--server --log-file=/tmp/x . x", /option --log-file/);
  no("--server --log-file-format=%f . x", /option --log-file-format/);
  no("--server --write-batch=b . x", /option --write-batch/);
  no("--server --read-batch=b . x", /option --read-batch/);
  no("--server --only-write-batch=b . x", /option --only-write-batch/);
  no("--server --copy-devices . x", /option --copy-devices/);
  no("--server --write-devices . x", /option --write-devices/);
  no("--server --no-munge-links . x", /option --no-munge-links/);
  no("--server --protect-args . x", /option --protect-args/);
  no("--server -svlogDtpre.iLsfxCIvu . x", /option -s/);
  no("--server -M--rsh=sh . x", /option -M/);
  no("--server -T /tmp . x", /option -T/);
  no("--server --delete=yes . x", /takes no value/);
  no("--server --timeout=$(id) . x", /bad value/);
  no("--server --timeout . x", /bad value/); // "." is not a number, and then no "."
  no("--server -v", /missing "\."/);
  no("--server -v .", /no path/);
  no("--server . a b", /exactly one destination/);
  no("--server x . y", /unexpected argument/);
});

Deno.test("grammar sftp-server: only the flags the ini allows, values checked", () => {
  const sftp = "/usr/lib/openssh/sftp-server";
  assert.deepEqual(checkArguments(sftp, ["sftp-server"]), []);
  assert.deepEqual(checkArguments(sftp, ["sftp-server", "-e", "-l", "INFO", "-fAUTH"]), [
    "-e",
    "-l",
    "INFO",
    "-f",
    "AUTH",
  ]);
  assert.deepEqual(checkArguments(sftp, ["sftp-server", "-el", "DEBUG"]), ["-e", "-l", "DEBUG"]);
  refused(sftp, ["sftp-server", "-R"], /option -R/); // not in the default set
  assert.deepEqual(
    checkArguments(sftp, ["sftp-server", "-R", "-u", "027"], { sftpServerFlags: ["-R", "-u"] }),
    [
      "-R",
      "-u",
      "027",
    ],
  );
  refused(sftp, ["sftp-server", "-l", "LOUD"], /bad or missing value for -l/);
  refused(sftp, ["sftp-server", "-l"], /bad or missing value for -l/);
  refused(sftp, ["sftp-server", "-u", "999"], /-u/, ["-u"]);
  refused(sftp, ["sftp-server", "-x"], /option -x/, ["-x"]);
  refused(sftp, ["sftp-server", "file"], /unexpected argument/);
});

Deno.test("grammar git: exactly one repository path", () => {
  for (const p of ["git-upload-pack", "git-receive-pack", "git-upload-archive"]) {
    assert.deepEqual(checkArguments(`/usr/bin/${p}`, [p, "/srv/r.git"]), ["/srv/r.git"]);
    refused(`/usr/bin/${p}`, [p], /exactly one/);
    refused(`/usr/bin/${p}`, [p, "a", "b"], /exactly one/);
    refused(`/usr/bin/${p}`, [p, "--upload-pack=sh"], /bad repository path/);
  }
  // A program without a grammar keeps its words, as in jailkit.
  assert.deepEqual(checkArguments("/usr/bin/id", ["id", "-u", "x"]), ["-u", "x"]);
});

// ---------------------------------------------------------------------------
// Policy

function section(text: string, name = "DEFAULT") {
  return parseIni(text, "/etc/jailkit/jk_lsh.ini").section(name)!;
}

Deno.test("policy: defaults, jailkit keys and our refusals", () => {
  const p = policyFromSection(section("[DEFAULT]\nexecutables = /usr/bin/rsync\n"));
  assert.deepEqual(p.umask, 0o022); // jailkit: 000
  assert.deepEqual(p.wordExpansion, false);
  assert.deepEqual(p.sftpServerFlags, ["-e", "-f", "-l"]);
  const q = policyFromSection(section(
    "[DEFAULT]\nexecutables = /usr/bin/rsync, /usr/bin/scp\npaths = /usr/bin/, /usr/lib\n" +
      "umask = 077\nallow_word_expansion = 1\nenvironment = LANG=C.UTF-8, A=b=c\n" +
      "sftp_server_flags = -R\n",
  ));
  assert.deepEqual(q.paths, ["/usr/bin", "/usr/lib"]);
  assert.deepEqual(q.umask, 0o077);
  assert.deepEqual(q.wordExpansion, true);
  assert.deepEqual(q.environment, { LANG: "C.UTF-8", A: "b=c" });
  assert.deepEqual(q.sftpServerFlags, ["-R"]);

  assert.throws(
    () => policyFromSection(section("[DEFAULT]\npaths = /usr/bin\n")),
    (e: unknown) => e instanceof JkError && e.exitCode === EXIT_NO_EXECUTABLES,
  );
  const bad = (text: string, pattern: RegExp) =>
    assert.throws(() => policyFromSection(section(`[DEFAULT]\n${text}\n`)), pattern);
  bad("executables = /usr/bin/rsync\nexecutable = /x", /:3: unknown key "executable"/);
  bad("executables = rsync", /not a clean absolute path/);
  bad("executables = /usr/bin/../bin/rsync", /not a clean absolute path/);
  bad("executables = /usr/bin/rsync\npaths = bin", /not a clean absolute directory/);
  bad("executables = /usr/bin/rsync\numask = 999", /octal/);
  bad("executables = /usr/bin/rsync\nenvironment = EMPTY=", /not NAME=VALUE/);
  bad("executables = /usr/bin/rsync\nenvironment = LD_PRELOAD=/x.so", /never passed/);
  bad("executables = /usr/bin/rsync\nsftp_server_flags = -Z", /not an sftp-server flag/);
  bad("executables = /usr/bin/rsync\nallow_word_expansion = maybe", /1\/0/);
});

Deno.test("policy: program resolution and the clean environment", () => {
  const files = new Set(["/usr/bin/rsync", "/usr/local/bin/rsync", "/usr/bin/scp"]);
  const isFile = (p: string) => files.has(p);
  const fence = (p: string) => p !== "/usr/local/bin/rsync";
  assert.deepEqual(resolveProgram("/usr/bin/rsync", [], isFile, fence), {
    found: true,
    path: "/usr/bin/rsync",
  });
  // The first candidate the build can run wins; one it cannot run is skipped.
  assert.deepEqual(resolveProgram("rsync", ["/usr/local/bin", "/usr/bin"], isFile, fence), {
    found: true,
    path: "/usr/bin/rsync",
  });
  assert.deepEqual(resolveProgram("rsync", [], isFile, fence).found, false);
  for (const word of ["../bin/rsync", "bin/rsync", "/usr/bin/../bin/rsync", "/usr//bin/rsync"]) {
    assert.deepEqual(resolveProgram(word, ["/usr"], isFile, () => true), {
      found: false,
      reason: "bad-name",
    });
  }
  assert.deepEqual(childEnvironment("alice", { LANG: "C" }), {
    PATH: "/usr/bin:/bin",
    HOME: "/",
    USER: "alice",
    LOGNAME: "alice",
    LANG: "C",
  });
});

Deno.test("fence: the transfer tools plus config/jk_lsh.ini executables, absolute", async () => {
  const fence = lshFence();
  for (const p of LSH_DEFAULT_FENCE) assert.ok(fence.includes(p));
  const dir = await Deno.makeTempDir();
  try {
    const ini = `${dir}/jk_lsh.ini`;
    await Deno.writeTextFile(ini, "[a]\nexecutables = /opt/x/bin/tool, /usr/bin/rsync\n");
    const extra = lshFence(new URL(`file://${ini}`));
    assert.ok(extra.includes("/opt/x/bin/tool"));
    assert.deepEqual(extra.filter((p) => p === "/usr/bin/rsync").length, 1);
    await Deno.writeTextFile(ini, "[a]\nexecutables = tool\n");
    assert.throws(() => lshFence(new URL(`file://${ini}`)), /jk_lsh.ini:2: .*tool/);
    assert.deepEqual(lshFence(new URL(`file://${dir}/absent.ini`)), [...LSH_DEFAULT_FENCE]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const flags = findTool("jk_lsh")!.permissions({ prefix: "/p", sysconfdir: "/p/etc/jailkit" });
  assert.ok(!flags.some((f) => f === "--allow-all" || f.startsWith("--allow-ffi")));
  assert.ok(
    flags.every((f) =>
      !f.includes("=") ||
      f.split("=")[1].split(",").every((p) =>
        p.startsWith("/") || p.startsWith("unix:/") || /^[A-Z]+$/.test(p)
      )
    ),
  );
});

// ---------------------------------------------------------------------------
// The installed jk_lsh, run as a real user on the host

const HOST_INI = `[DEFAULT]
paths = /usr/bin, /usr/lib/openssh
executables = /usr/bin/rsync, /usr/bin/scp, /usr/lib/openssh/sftp-server, /usr/bin/id
`;

/** Replaces the test install's jk_lsh.ini for the duration of `fn`. */
async function withIni(text: string, fn: (file: string) => Promise<void>) {
  const file = `${(await testSite()).sysconfdir}/jk_lsh.ini`;
  const saved = await Deno.readTextFile(file).catch(() => null);
  await Deno.writeTextFile(file, text, { mode: 0o644 });
  await Deno.chmod(file, 0o644);
  try {
    await fn(file);
  } finally {
    if (saved === null) await Deno.remove(file).catch(() => {});
    else await Deno.writeTextFile(file, saved);
  }
}

async function lshAs(
  user: TestUser,
  args: string[],
  opts: { env?: Record<string, string>; stdin?: string; cwd?: string } = {},
): Promise<RunResult> {
  return runCommand(await toolPathUnderTest("jk_lsh"), args, {
    uid: user.uid,
    gid: user.gid,
    env: opts.env ?? { PATH: "/usr/bin:/bin", USER: user.name },
    stdin: opts.stdin,
    cwd: opts.cwd ?? user.home,
  });
}

Deno.test({
  name: "jk_lsh as a user: allowed commands run and return their status",
  ignore: !root,
  fn: async () => {
    const user = await createUser();
    try {
      await withIni(HOST_INI, async () => {
        let r = await lshAs(user, ["-c", "rsync --version"]);
        assert.deepEqual(r.code, 0, r.stderr);
        assert.match(r.stdout, /^rsync +version/);
        r = await lshAs(user, ["--login", "-c", "/usr/bin/rsync --version"]);
        assert.deepEqual(r.code, 0, r.stderr);
        // scp's own failure comes back unchanged: its exit status and its message.
        r = await lshAs(user, ["-c", "scp -f /nonexistent"], { stdin: "\0" });
        assert.deepEqual(r.code, 1);
        assert.match(r.stdout, /nonexistent: No such file/);
        // sftp-server speaks SFTP on stdin/stdout: an INIT packet gets a VERSION reply.
        const child = new Deno.Command(await toolPathUnderTest("jk_lsh"), {
          args: ["-c", "sftp-server -e"],
          uid: user.uid,
          gid: user.gid,
          cwd: user.home,
          clearEnv: true,
          env: { PATH: "/usr/bin:/bin" },
          stdin: "piped",
          stdout: "piped",
          stderr: "null",
        }).spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new Uint8Array([0, 0, 0, 5, 1, 0, 0, 0, 3])); // SSH_FXP_INIT v3
        const reader = child.stdout.getReader();
        const reply = await reader.read();
        assert.equal(reply.value?.[4], 2); // SSH_FXP_VERSION
        await writer.close();
        while (!(await reader.read()).done) { /* drain */ }
        assert.equal((await child.status).code, 0);
      });
    } finally {
      await user.remove();
    }
  },
});

Deno.test({
  name: "jk_lsh as a user: uploads get umask 022 by default, the ini's umask otherwise",
  ignore: !root,
  fn: async () => {
    const user = await createUser();
    try {
      const upload = (name: string) => `C0666 6 ${name}\nhello\n\0`;
      await withIni(HOST_INI, async () => {
        const r = await lshAs(user, ["-c", `scp -t ${user.home}`], { stdin: upload("a.txt") });
        assert.deepEqual(r.code, 0, r.stderr);
        assert.deepEqual((await Deno.stat(`${user.home}/a.txt`)).mode! & 0o777, 0o644);
        assert.deepEqual(await Deno.readTextFile(`${user.home}/a.txt`), "hello\n");
      });
      await withIni(HOST_INI + "umask = 077\n", async () => {
        const r = await lshAs(user, ["-c", `scp -t ${user.home}`], { stdin: upload("b.txt") });
        assert.deepEqual(r.code, 0, r.stderr);
        assert.deepEqual((await Deno.stat(`${user.home}/b.txt`)).mode! & 0o777, 0o600);
      });
    } finally {
      await user.remove();
    }
  },
});

Deno.test({
  name: "jk_lsh as a user: refusals and their exit codes",
  ignore: !root,
  fn: async () => {
    const user = await createUser();
    try {
      await withIni(HOST_INI, async () => {
        const cases: [string[], number, RegExp][] = [
          [[], 7, /interactive shell session/],
          [["-l"], 7, /interactive/],
          [["-i"], 7, /interactive/],
          [["-c"], 7, /interactive/],
          [["-c", "rsync --version", "extra"], 7, /interactive/],
          [["-lc", "rsync --version"], 7, /interactive/],
          [["-c", "   "], 7, /interactive/],
          [["-c", "sh"], 4, /tried to run 'sh', which is not allowed/],
          [["-c", "/bin/sh -c id"], 4, /not allowed/],
          [["-c", "/usr/bin/../bin/rsync --version"], 4, /not allowed/],
          [["-c", "cat /etc/passwd"], 4, /not allowed/],
          [["-c", "id"], 4, /outside the build's --allow-run fence/],
          [["-c", "rsync --version $(id)"], 6, /command substitution/],
          [["-c", "rsync --version `id`"], 6, /command substitution/],
          [["-c", "rsync --version; id"], 6, /illegal word expansion/],
          [["-c", "rsync --version | id"], 6, /illegal word expansion/],
          [["-c", "rsync --version && id"], 6, /illegal word expansion/],
          [["-c", "rsync --version > /tmp/x"], 6, /illegal word expansion/],
          [["-c", "rsync --version\nid"], 6, /control character U\+000A/],
          [["-c", "rsync --version\rid"], 6, /control character/],
          [["-c", "rsync\t--version"], 6, /control character/],
          [["-c", "rsync --version \x1b[2J"], 6, /control character/],
          [["-c", "rsync --version \x7f"], 6, /control character/],
          [["-c", "rsync --server . " + "a".repeat(40_000)], 6, /limit/],
          [["-c", "rsync --version '"], 6, /syntax error/],
          [["-c", "scp -t $HOME"], 6, /word expansion is not enabled/],
          [["-c", "scp -S /bin/sh -t x"], 4, /scp: option -S/],
          [["-c", "scp -o ProxyCommand=id -f x"], 4, /scp: option -o/],
          [["-c", "scp x host:y"], 4, /exactly one of -t/],
          [["-c", "scp -t host:y"], 4, /remote target/],
          [["-c", "rsync --server -e sh . x"], 4, /rsync: option -e/],
          [["-c", "rsync --server --rsh=sh . x"], 4, /rsync: option --rsh/],
          [["-c", "rsync --server --rsh sh . x"], 4, /rsync: option --rsh/],
          [["-c", "rsync -e sh x h:y"], 4, /only the server side/],
          [["-c", "rsync --daemon"], 4, /only the server side/],
          [["-c", "rsync --server --log-file=/tmp/x . y"], 4, /--log-file/],
          [["-c", "rsync --server --write-batch=x . y"], 4, /--write-batch/],
          [["-c", "rsync --server -s . y"], 4, /option -s/],
          [["-c", "sftp-server -R"], 4, /sftp-server: option -R/],
        ];
        for (const [args, code, pattern] of cases) {
          const r = await lshAs(user, args);
          assert.deepEqual(r.code, code, `${JSON.stringify(args)}: ${r.stderr}`);
          assert.match(r.stderr, pattern, JSON.stringify(args));
          assert.deepEqual(r.stdout, "", JSON.stringify(args));
        }
        // Non-UTF-8 bytes: only a shell can put them in argv (Deno strings are UTF-8).
        const r = await runCommand(
          "/bin/sh",
          [
            "-c",
            `exec "$1" -c "$(printf 'scp -t \\377\\376')"`,
            "sh",
            await toolPathUnderTest("jk_lsh"),
          ],
          { uid: user.uid, gid: user.gid, env: { PATH: "/usr/bin:/bin" }, cwd: user.home },
        );
        assert.deepEqual(r.code, 6, r.stderr);
        assert.match(r.stderr, /not valid UTF-8/);
        // USER naming another account is refused, as in jailkit.
        const root = await lshAs(user, ["-c", "rsync --version"], {
          env: { PATH: "/usr/bin:/bin", USER: "root" },
        });
        assert.deepEqual(root.code, 2);
        assert.match(root.stderr, /USER root has UID 0/);
      });
    } finally {
      await user.remove();
    }
  },
});

Deno.test({
  name: "jk_lsh as a user: ini sections, a missing, unsafe or broken ini",
  ignore: !root,
  fn: async () => {
    const user = await createUser();
    try {
      const run = () => lshAs(user, ["-c", "/usr/bin/rsync --version"]);
      const none = "[someoneelse]\nexecutables = /usr/bin/rsync\n";
      await withIni(none, async () => {
        const r = await run();
        assert.deepEqual(r.code, 3, r.stderr);
        assert.match(r.stderr, new RegExp(`neither find a section '${user.name}'`));
      });
      await withIni(none + `[group ${user.name}]\nexecutables = /usr/bin/rsync\n`, async () => {
        assert.deepEqual((await run()).code, 0);
      });
      // [user] wins over [group] and [DEFAULT]; sections are not merged.
      await withIni(
        `[${user.name}]\nexecutables = /usr/bin/scp\n[DEFAULT]\nexecutables = /usr/bin/rsync\n`,
        async () => assert.deepEqual((await run()).code, 4),
      );
      await withIni("[DEFAULT]\npaths = /usr/bin\n", async () => {
        const r = await run();
        assert.deepEqual(r.code, 5);
        assert.match(r.stderr, /section DEFAULT does not have a key executables/);
      });
      await withIni("[DEFAULT]\nexecutables /usr/bin/rsync\n", async () => {
        const r = await run();
        assert.deepEqual(r.code, 1);
        assert.match(r.stderr, /jk_lsh.ini:2: expected "key = value"/);
      });
      await withIni(HOST_INI, async (file) => {
        await Deno.chmod(file, 0o666);
        let r = await run();
        assert.deepEqual(r.code, 1);
        assert.match(r.stderr, /must be owned by root and not writable/);
        await Deno.chmod(file, 0o644);
        await Deno.chown(file, user.uid, user.gid);
        r = await run();
        assert.deepEqual(r.code, 1);
        await Deno.chown(file, 0, 0);
        await Deno.rename(file, `${file}.away`);
        try {
          r = await run();
          assert.deepEqual(r.code, 1);
          assert.match(r.stderr, /configfile .*jk_lsh.ini is not available/);
        } finally {
          await Deno.rename(`${file}.away`, file);
        }
      });
    } finally {
      await user.remove();
    }
  },
});

// ---------------------------------------------------------------------------
// Inside a jail: the environment, exit codes, signals and the log socket

/**
 * A jail built by `jk_init -j JAIL jk_lsh` (the launcher, the Deno runtime,
 * the sources and cache of a dev install, the ini), plus /bin/sh, the user in
 * etc/passwd, and a fixture standing in for git-upload-pack that does what its
 * one argument says.
 */
async function lshJail(user: TestUser): Promise<{ jail: string; ini: string }> {
  const site = await testSite();
  const jail = await scratchDir("lshjail");
  const init = await runTool("jk_init", ["-j", jail, "jk_lsh"]);
  if (init.code !== 0) {
    await Deno.remove(jail, { recursive: true });
    assert.fail(`jk_init -j ${jail} jk_lsh exited ${init.code}: ${init.stderr}`);
  }
  await copyWithLibs(jail, ["/bin/sh"]); // the fixture's interpreter (test only)
  const launcher = await toolPathUnderTest("jk_lsh");
  await Deno.writeTextFile(
    `${jail}/etc/passwd`,
    `${user.name}:x:${user.uid}:${user.gid}::/home/${user.name}:${launcher}\n`,
    { append: true },
  );
  await Deno.writeTextFile(`${jail}/etc/group`, `${user.name}:x:${user.gid}:\n`, {
    append: true,
  });
  await Deno.mkdir(`${jail}/home/${user.name}`, { recursive: true });
  await Deno.chown(`${jail}/home/${user.name}`, user.uid, user.gid);
  await Deno.mkdir(`${jail}/usr/bin`, { recursive: true });
  await Deno.writeTextFile(
    `${jail}/usr/bin/git-upload-pack`,
    [
      "#!/bin/sh",
      'case "$1" in',
      "  env) export -p ;;",
      "  umask) umask ;;",
      "  exit*) exit ${1#exit} ;;",
      "  kill*) kill -s ${1#kill} $$ ;;",
      "  trap) trap 'echo got-TERM; exit 7' TERM; echo ready; read line; echo no-signal ;;",
      "esac",
      "",
    ].join("\n"),
    { mode: 0o755 },
  );
  await Deno.chmod(`${jail}/usr/bin/git-upload-pack`, 0o755);
  const ini = `${jail}${site.sysconfdir}/jk_lsh.ini`;
  await Deno.mkdir(`${jail}${site.sysconfdir}`, { recursive: true });
  await Deno.writeTextFile(
    ini,
    "[DEFAULT]\npaths = /usr/bin\nexecutables = /usr/bin/git-upload-pack\n" +
      "environment = LANG=C.UTF-8\n",
  );
  return { jail, ini };
}

/** Runs the jail's jk_lsh as the user, as jk_chrootsh would leave it: chrooted, in the home. */
function lshInJail(
  jail: string,
  user: TestUser,
  args: string[],
  env: Record<string, string> = {},
) {
  return toolPathUnderTest("jk_lsh").then((launcher) =>
    new Deno.Command("/usr/sbin/chroot", {
      args: [`--userspec=${user.uid}:${user.gid}`, "--groups=", jail, launcher, ...args],
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin", USER: user.name, HOME: `/home/${user.name}`, ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
}

/** Closes the child's stdin and collects its output. */
function finish(child: Deno.ChildProcess): Promise<RunResult> {
  return finishChild(child);
}

Deno.test({
  name: "jk_lsh in a jail: clean environment, exit status, signals both ways, umask",
  ignore: !root,
  fn: async () => {
    const user = await createUser();
    let jail = "";
    try {
      ({ jail } = await lshJail(user));
      const hostile = {
        LD_PRELOAD: "/nonexistent/evil.so",
        LD_LIBRARY_PATH: "/home",
        BASH_ENV: "/home/evil",
        ENV: "/home/evil",
        RSYNC_RSH: "sh",
        GIT_SSH_COMMAND: "sh",
        IFS: "x",
        PATH: "/home:/usr/bin:/bin",
        NODE_OPTIONS: "--require /home/evil.js",
        DENO_V8_FLAGS: "--nope",
      };
      let r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack env"], hostile));
      assert.deepEqual(r.code, 0, r.stderr);
      const names = [...r.stdout.matchAll(/^export (\w+)=/gm)].map((m) => m[1]).sort();
      assert.deepEqual(names, ["HOME", "LANG", "LOGNAME", "PATH", "PWD", "USER"]);
      assert.match(r.stdout, /^export PATH='\/usr\/bin:\/bin'$/m);
      assert.match(r.stdout, /^export HOME='\/'$/m);
      assert.match(r.stdout, new RegExp(`^export USER='${user.name}'$`, "m"));

      r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack exit42"]));
      assert.deepEqual(r.code, 42);
      r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack umask"]));
      assert.deepEqual(r.stdout.trim(), "0022");

      // A program killed by a signal: jk_lsh dies of the same signal.
      r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack killTERM"]));
      assert.deepEqual(r.signal, "SIGTERM", JSON.stringify(r));
      r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack killUSR1"]));
      assert.deepEqual(r.signal, "SIGUSR1");

      // A signal sent to jk_lsh reaches the program. Should it not, the program
      // would wait forever: a watchdog kills the user's processes after 20 s.
      const child = await lshInJail(jail, user, ["-c", "git-upload-pack trap"]);
      const watchdog = setTimeout(() => runCommand("pkill", ["-KILL", "-u", user.name]), 20_000);
      const reader = child.stdout.getReader();
      const first = await reader.read();
      assert.deepEqual(new TextDecoder().decode(first.value).trim(), "ready");
      child.kill("SIGTERM");
      let rest = "";
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
        rest += new TextDecoder().decode(chunk.value);
      }
      await child.stdin.close().catch(() => {});
      const status = await child.status;
      clearTimeout(watchdog);
      await child.stderr.cancel();
      assert.deepEqual(rest.trim(), "got-TERM");
      assert.deepEqual(status.code, 7);
    } finally {
      await user.remove();
      if (jail) await Deno.remove(jail, { recursive: true });
    }
  },
});

Deno.test({
  name: "jk_lsh in a jail: reads the jail's ini and logs to the jail's /dev/log",
  ignore: !root,
  fn: async () => {
    const user = await createUser();
    let jail = "";
    let logger: DatagramListener | undefined;
    try {
      const made = await lshJail(user);
      jail = made.jail;
      const site = await testSite();
      const socketPath = `${jail}/dev/log`;
      logger = new DatagramListener(socketPath, { mode: 0o666 });
      // jk_lsh's log socket: PREFIX/usr/lib/jailkit/dev-log, a link to the jail's /dev/log.
      const link = `${jail}${lshLogSocket(site)}`;
      if (!(await Deno.lstat(link).then(() => true, () => false))) {
        await Deno.symlink("/dev/log", link);
      }
      await Deno.writeTextFile(
        made.ini,
        "[DEFAULT]\npaths = /usr/bin\nexecutables = /usr/bin/git-upload-pack, /usr/bin/id\n",
      );
      const lines = logger.lines;

      let r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack exit0"]));
      assert.deepEqual(r.code, 0, r.stderr);
      r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack a;id"]));
      assert.deepEqual(r.code, 6);
      // The jail's ini, not the host's: without a section for the user, exit 3.
      await Deno.writeTextFile(made.ini, "[nobody]\nexecutables = /usr/bin/git-upload-pack\n");
      r = await finish(await lshInJail(jail, user, ["-c", "git-upload-pack exit0"]));
      assert.deepEqual(r.code, 3, r.stderr);

      for (let i = 0; i < 50 && lines.length < 8; i++) await new Promise((f) => setTimeout(f, 20));
      const text = lines.join("\n");
      assert.match(text, /^<38>\w{3} [ \d]\d \d\d:\d\d:\d\d jk_lsh\[\d+\]: jk_lsh started$/m);
      assert.match(
        text,
        new RegExp(
          `^<38>.* jk_lsh\\[\\d+\\]: executing command '/usr/bin/git-upload-pack exit0' ` +
            `for user ${user.name} \\(${user.uid}\\)$`,
          "m",
        ),
      );
      assert.match(text, /^<35>.*illegal word expansion/m);
      assert.match(text, /^<36>.*allows \/usr\/bin\/id, outside this build's --allow-run fence/m);
      assert.match(text, /^<35>.*did neither find a section/m);
    } finally {
      await logger?.close();
      await user.remove();
      if (jail) await Deno.remove(jail, { recursive: true });
    }
  },
});
