/**
 * jk_init against real jails, as root: every stock section of config/jk_init.ini
 * builds a jail in which its programs run under `chroot`, and every key, error
 * and refusal of the tool behaves as src/jk_init.ts documents.
 *
 * Needs the Debian packages the stock sections copy: openssh-client,
 * openssh-sftp-server, rsync, git, perl, vim, nano, wget, curl, bind9-host,
 * netcat-openbsd, cpio, bzip2, less, procps.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseIni } from "../src/ini.ts";
import {
  appendLines,
  listSections,
  loadConfig,
  planSections,
  selectAccounts,
} from "../src/jk_init.ts";
import { parsePasswd } from "../src/passwd.ts";
import { iniPath } from "../src/site.ts";
import { findTool } from "../src/tools.ts";
import {
  createUser,
  runCommand,
  runTool,
  scratchDir,
  testPrefix,
  testSite,
  toolPathUnderTest,
} from "./harness.ts";

const isRoot = Deno.uid() === 0;

/** A root-only test with its own scratch directory, removed afterwards. */
function rootTest(name: string, fn: (dir: string) => Promise<void>) {
  Deno.test({
    name,
    ignore: !isRoot,
    sanitizeResources: false,
    fn: async () => {
      const dir = await scratchDir("init");
      try {
        await fn(dir);
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  });
}

async function siteIni(): Promise<string> {
  return iniPath(await testSite(), "jk_init");
}

async function socketdIni(): Promise<string> {
  return iniPath(await testSite(), "jk_socketd");
}

/**
 * Runs `fn`, then puts the site's jk_socketd.ini back as it was: sections
 * with need_logsocket add the jail's /dev/log to it.
 */
async function keepingSocketdIni(fn: () => Promise<void>): Promise<void> {
  const path = await socketdIni();
  const before = await Deno.readTextFile(path).catch(() => null);
  try {
    await fn();
  } finally {
    if (before === null) await Deno.remove(path).catch(() => {});
    else await Deno.writeTextFile(path, before);
  }
}

/** Writes an ini file into `dir` and returns its path. */
async function writeIni(dir: string, text: string): Promise<string> {
  const path = `${dir}/test.ini`;
  await Deno.writeTextFile(path, text);
  return path;
}

/** jk_init with the site's stock ini, checked to succeed. */
async function initStock(jail: string, ...sections: string[]) {
  const r = await runTool("jk_init", ["-c", await siteIni(), "-j", jail, ...sections]);
  assert.equal(r.code, 0, `jk_init ${sections.join(" ")} failed (${r.code}):\n${r.stderr}`);
  return r;
}

/** Runs a program inside the jail. */
function inJail(
  jail: string,
  args: string[],
  opts: { stdin?: string | Uint8Array; userspec?: string } = {},
) {
  const user = opts.userspec ? [opts.userspec] : [];
  return runCommand("/usr/sbin/chroot", [...user, jail, ...args], {
    stdin: opts.stdin,
    env: { PATH: "/usr/bin:/bin", LANG: "C", HOME: "/" },
  });
}

/** Runs a program inside the jail and checks it succeeded; returns stdout + stderr. */
async function okInJail(
  jail: string,
  args: string[],
  opts: { stdin?: string | Uint8Array; userspec?: string } = {},
) {
  const r = await inJail(jail, args, opts);
  assert.equal(r.code, 0, `chroot ${jail} ${args.join(" ")} failed (${r.code}):\n${r.stderr}`);
  return r.stdout + r.stderr;
}

/**
 * Runs `fn` with a throw-away host user written into the jail's etc/passwd by
 * jk_init's `users` key (what jk_jailuser does for a real account); programs
 * then run as that user with `chroot --userspec`.
 */
async function withJailedUser(
  dir: string,
  jail: string,
  fn: (userspec: string, user: { uid: number; gid: number }) => Promise<void>,
): Promise<void> {
  const user = await createUser();
  try {
    const ini = await writeIni(dir, `[account]\nusers = ${user.name}\n`);
    const r = await runTool("jk_init", ["-c", ini, "-j", jail, "account"]);
    assert.equal(r.code, 0, r.stderr);
    await fn(`--userspec=${user.uid}:${user.gid}`, user);
  } finally {
    await user.remove();
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Every file in `dir` (recursively), as in-jail paths, via lstat. */
async function walk(root: string, dir = ""): Promise<{ path: string; info: Deno.FileInfo }[]> {
  const out: { path: string; info: Deno.FileInfo }[] = [];
  for await (const e of Deno.readDir(root + (dir || "/"))) {
    const path = `${dir}/${e.name}`;
    const info = await Deno.lstat(root + path);
    out.push({ path, info });
    if (info.isDirectory) out.push(...await walk(root, path));
  }
  return out;
}

/**
 * Every regular file of the jail that has a regular host file at the same
 * path is complete: same size as the host's. (A half-written file at its final
 * name would show here.)
 */
async function assertFilesComplete(jail: string): Promise<number> {
  let checked = 0;
  for (const { path, info } of await walk(jail)) {
    if (!info.isFile || path === "/etc/passwd" || path === "/etc/group") continue;
    assert.ok(!/\/\.jk_tmp\./.test(path), `temporary file left: ${path}`);
    const host = await Deno.lstat(path).catch(() => null);
    if (!host?.isFile) continue;
    assert.equal(info.size, host.size, `${jail}${path} has ${info.size} bytes, host ${host.size}`);
    checked++;
  }
  return checked;
}

// ---------------------------------------------------------------------------
// Each stock section gives a jail in which its programs run.

rootTest("stock [jk_lsh]: the jk_lsh entry point and its runtime run in the jail", async (dir) => {
  const jail = `${dir}/jail`;
  await keepingSocketdIni(async () => {
    await initStock(jail, "jk_lsh");
    const prefix = await testPrefix();
    // The dev runtime that a dev-install jk_lsh launcher runs.
    assert.match(await okInJail(jail, [`${prefix}/usr/lib/jailkit/deno`, "--version"]), /^deno 2/);
    assert.match(await Deno.readTextFile(`${jail}/etc/passwd`), /^root:x:0:0:/m);
    assert.ok(await exists(`${jail}${iniPath(await testSite(), "jk_lsh")}`));
    if (findTool("jk_lsh")) {
      // jk_lsh itself starts in the jail, reads its ini there and answers for root.
      const launcher = await toolPathUnderTest("jk_lsh");
      assert.ok(await exists(`${jail}${launcher}`), "jk_lsh launcher copied");
      const r = await inJail(jail, [launcher, "-c", "true"]);
      assert.ok(r.code !== 126 && r.code !== 127, `jk_lsh did not start: ${r.stderr}`);
      assert.match(r.stderr, /^jk_lsh: /m);
    }
  });
});

rootTest("stock [sftp]: sftp-server speaks SFTP in the jail", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "sftp");
  // SSH_FXP_INIT version 3, then SSH_FXP_REALPATH "." (id 7).
  const packet = (type: number, body: number[]) => {
    const len = 1 + body.length;
    return [len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255, type, ...body];
  };
  const input = new Uint8Array([
    ...packet(1, [0, 0, 0, 3]),
    ...packet(16, [0, 0, 0, 7, 0, 0, 0, 1, 0x2e]),
  ]);
  await withJailedUser(dir, jail, async (userspec) => {
    // sftp-server exits at end of input, answered or not: keep stdin open
    // until both replies are in, as an ssh channel would.
    const child = new Deno.Command("/usr/sbin/chroot", {
      args: [userspec, jail, "/usr/lib/openssh/sftp-server"],
      clearEnv: true,
      env: { PATH: "/usr/bin" },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(input);
    let reply = new Uint8Array();
    const replies = (bytes: Uint8Array) => {
      let count = 0;
      for (let at = 0; at + 4 <= bytes.length; count++) {
        at += 4 + new DataView(bytes.buffer, bytes.byteOffset + at).getUint32(0);
        if (at > bytes.length) return count;
      }
      return count;
    };
    for await (const chunk of child.stdout) {
      reply = new Uint8Array([...reply, ...chunk]);
      if (replies(reply) >= 2) break;
    }
    await writer.close();
    assert.equal((await child.status).code, 0);
    assert.equal(reply[4], 2, "SSH_FXP_VERSION");
    const second = 4 + new DataView(reply.buffer).getUint32(0);
    assert.equal(reply[second + 4], 104, "SSH_FXP_NAME");
    assert.equal(new DataView(reply.buffer).getUint32(second + 5), 7, "reply to request 7");
  });
});

rootTest("stock [scp]: scp -t receives a file in the jail", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "scp");
  await withJailedUser(dir, jail, async (userspec, user) => {
    await Deno.mkdir(`${jail}/upload`);
    await Deno.chown(`${jail}/upload`, user.uid, user.gid);
    const r = await inJail(jail, ["/usr/bin/scp", "-t", "/upload"], {
      stdin: "C0644 6 f.txt\nhello\n\0",
      userspec,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${jail}/upload/f.txt`), "hello\n");
    assert.equal((await Deno.stat(`${jail}/upload/f.txt`)).uid, user.uid);
  });
});

rootTest("stock [rsync]: rsync copies inside the jail", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "rsync");
  assert.match(await okInJail(jail, ["/usr/bin/rsync", "--version"]), /rsync\s+version/);
  await Deno.mkdir(`${jail}/upload`);
  await okInJail(jail, ["/usr/bin/rsync", "-a", "/etc/hosts", "/upload/"]);
  assert.equal(
    await Deno.readTextFile(`${jail}/upload/hosts`),
    await Deno.readTextFile(`${jail}/etc/hosts`),
  );
});

rootTest("stock [basicshell]: bash, sh and the basic utilities work", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "basicshell");
  const script = [
    "set -e",
    "echo hi | grep -c hi",
    "ls / >/dev/null",
    "mkdir /t && touch /t/a && cp /t/a /t/b && mv /t/b /t/c && ln -s c /t/d",
    "tar -C /t -czf /t.tgz a c && gzip -t /t.tgz && zcat /t.tgz | tar -t",
    "echo x | cpio -o 2>/dev/null | wc -c >/dev/null || true",
    "sed -n 1p /etc/passwd | cut -d: -f1 2>/dev/null || sed -n 's/:.*//p;q' /etc/passwd",
    "date +%Y >/dev/null",
    "sh -c 'echo sh-ok'",
  ].join("\n");
  const out = await okInJail(jail, ["/bin/bash", "-c", script]);
  assert.match(out, /^1$/m);
  assert.match(out, /^a\nc$/m);
  assert.match(out, /^root$/m);
  assert.match(out, /^sh-ok$/m);
});

rootTest("stock [extendedshell]: awk, find, sort, bzip2, less, whoami", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "extendedshell");
  const script = [
    "set -e",
    "awk 'BEGIN { print 6 * 7 }'",
    "find /usr/bin -maxdepth 1 -name awk",
    "printf 'b\\na\\n' | sort | head -1",
    "bzip2 -c /etc/profile | bunzip2 -c | md5sum | cut -c1-8",
    "md5sum /etc/profile | cut -c1-8",
    "whoami",
    "less --version | head -1",
    "tail -1 /etc/passwd | wc -l",
  ].join("\n");
  const out = await okInJail(jail, ["/bin/bash", "-c", script]);
  const lines = out.trim().split("\n");
  assert.equal(lines[0], "42");
  assert.equal(lines[1], "/usr/bin/awk");
  assert.equal(lines[2], "a");
  assert.equal(lines[3], lines[4], "bzip2 round trip");
  assert.equal(lines[5], "root");
  assert.match(lines[6], /^less \d+/);
  // extendedshell brings the editors too.
  assert.match(await okInJail(jail, ["/usr/bin/vim", "--version"]), /VIM - Vi IMproved/);
});

rootTest("stock [netutils]: wget, curl, host, nc, ssh, rsync, sftp-server", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "netutils");
  assert.match(await okInJail(jail, ["/usr/bin/wget", "--version"]), /GNU Wget/);
  assert.match(await okInJail(jail, ["/usr/bin/curl", "--version"]), /^curl \d/);
  // A real transfer without the network: curl reads a file URL.
  assert.equal(
    (await okInJail(jail, ["/usr/bin/curl", "-s", "file:///etc/protocols"])).length,
    (await Deno.stat(`${jail}/etc/protocols`)).size,
  );
  assert.match(await okInJail(jail, ["/usr/bin/host", "-V"]), /^host \d/);
  assert.match(await okInJail(jail, ["/usr/bin/nc", "-h"]), /netcat/i);
  await withJailedUser(dir, jail, async (userspec) => {
    assert.match(await okInJail(jail, ["/usr/bin/ssh", "-V"], { userspec }), /OpenSSH/);
  });
  assert.match(await okInJail(jail, ["/usr/bin/rsync", "--version"]), /rsync/);
  assert.ok(await exists(`${jail}/usr/lib/openssh/sftp-server`));
  assert.ok(await exists(`${jail}/usr/bin/scp`));
});

rootTest("stock [editors]: vim edits a file, nano and vi run", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "editors");
  await okInJail(jail, [
    "/usr/bin/vim",
    "-Nes",
    "-c",
    'call setline(1, "hello")',
    "-c",
    "wq",
    "/f",
  ]);
  assert.equal(await Deno.readTextFile(`${jail}/f`), "hello\n");
  // The runtime is there: filetype detection and syntax files load.
  await okInJail(jail, [
    "/usr/bin/vim",
    "-Nes",
    "-c",
    "syntax on",
    "-c",
    "set ft=python",
    "-c",
    'call writefile([get(b:, "current_syntax", "none")], "/syntax")',
    "-c",
    "q!",
  ]);
  assert.equal(await Deno.readTextFile(`${jail}/syntax`), "python\n");
  assert.match(await okInJail(jail, ["/usr/bin/nano", "--version"]), /GNU nano/);
  assert.match(await okInJail(jail, ["/usr/bin/vi", "--version"]), /VIM/);
});

rootTest("stock [git]: git makes a repository and a commit in the jail", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "git");
  assert.match(await okInJail(jail, ["/usr/bin/git", "--version"]), /^git version/);
  await okInJail(jail, ["/usr/bin/git", "init", "-q", "/repo"]);
  await okInJail(jail, [
    "/usr/bin/git",
    "-C",
    "/repo",
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@example.org",
    "commit",
    "-q",
    "--allow-empty",
    "-m",
    "first",
  ]);
  assert.match(await okInJail(jail, ["/usr/bin/git", "-C", "/repo", "log", "--oneline"]), /first/);
});

rootTest("stock [perl]: perl runs with XS modules", async (dir) => {
  const jail = `${dir}/jail`;
  await initStock(jail, "perl");
  const out = await okInJail(jail, [
    "/usr/bin/perl",
    "-MPOSIX=floor",
    "-MList::Util=sum",
    "-MData::Dumper",
    "-MDigest::MD5=md5_hex",
    "-e",
    "print sum(1, 2), floor(2.5), md5_hex(''), qq{\\n}",
  ]);
  assert.equal(out, "32d41d8cd98f00b204e9800998ecf8427e\n");
});

// ---------------------------------------------------------------------------
// Keys.

rootTest("users and groups are written once, also when jk_init runs twice", async (dir) => {
  const user = await createUser();
  try {
    const ini = await writeIni(
      dir,
      `[accounts]\nusers = root, nobody, ${user.name}, 0\ngroups = root, ${user.name}, nogroup\n`,
    );
    const jail = `${dir}/jail`;
    for (let i = 0; i < 2; i++) {
      const r = await runTool("jk_init", ["-c", ini, "-j", jail, "accounts"]);
      assert.equal(r.code, 0, r.stderr);
    }
    const passwd = (await Deno.readTextFile(`${jail}/etc/passwd`)).trim().split("\n");
    assert.deepEqual(
      passwd.map((l) => l.split(":")[0]).sort(),
      ["nobody", "root", user.name].sort(),
    );
    const hostLine = (await Deno.readTextFile("/etc/passwd")).split("\n")
      .find((l) => l.startsWith(`${user.name}:`))!;
    assert.ok(passwd.includes(hostLine.replace(/^([^:]*):[^:]*:/, "$1:x:")));
    const groups = (await Deno.readTextFile(`${jail}/etc/group`)).trim().split("\n")
      .map((l) => l.split(":")[0]);
    assert.deepEqual(groups.sort(), ["nogroup", "root", user.name].sort());
    const st = await Deno.stat(`${jail}/etc/passwd`);
    assert.equal(st.mode! & 0o777, 0o644);
    assert.equal(st.uid, 0);
  } finally {
    await user.remove();
  }
});

rootTest("an unknown user is reported and the rest is still done (exit 6)", async (dir) => {
  const ini = await writeIni(dir, "[accounts]\nusers = root, jkt-no-such-user\n");
  const jail = `${dir}/jail`;
  const r = await runTool("jk_init", ["-c", ini, "-j", jail, "accounts"]);
  assert.equal(r.code, 6);
  assert.match(r.stderr, /user jkt-no-such-user does not exist/);
  assert.match(await Deno.readTextFile(`${jail}/etc/passwd`), /^root:/);
});

rootTest("devices get the host's major/minor and mode", async (dir) => {
  const wanted = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"];
  // A device with a minor above 255, which jailkit's `rdev % 256` decoding got wrong.
  const minorOf = (rdev: number) => (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);
  for await (const e of Deno.readDir("/dev")) {
    const info = await Deno.lstat(`/dev/${e.name}`);
    if (info.isCharDevice && minorOf(info.rdev!) > 255) {
      wanted.push(`/dev/${e.name}`);
      break;
    }
  }
  const ini = await writeIni(dir, `[dev]\ndevices = ${wanted.join(", ")}\n`);
  const jail = `${dir}/jail`;
  const r = await runTool("jk_init", ["-c", ini, "-j", jail, "dev"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(wanted.length > 6, "found a device with a large minor number");
  for (const dev of wanted) {
    const host = await Deno.stat(dev);
    const made = await Deno.lstat(`${jail}${dev}`);
    assert.ok(made.isCharDevice, `${dev} is a character device`);
    assert.equal(made.rdev, host.rdev, `${dev} device number`);
    assert.equal(made.mode! & 0o7777, host.mode! & 0o7777, `${dev} mode`);
    assert.equal(made.uid, 0);
  }
});

rootTest("emptydirs are created even when the host has no such directory", async (dir) => {
  const missing = `/srv/jkt-absent-${crypto.randomUUID().slice(0, 8)}/uploads`;
  assert.ok(!(await exists(missing)));
  const ini = await writeIni(dir, `[dirs]\nemptydirs = ${missing}, /var/tmp\n`);
  const jail = `${dir}/jail`;
  const r = await runTool("jk_init", ["-c", ini, "-j", jail, "dirs"]);
  assert.equal(r.code, 0, r.stderr);
  for (const d of [missing, "/var/tmp"]) {
    const st = await Deno.lstat(`${jail}${d}`);
    assert.ok(st.isDirectory, d);
    assert.equal(st.mode! & 0o7777, 0o755);
    assert.equal(st.uid, 0);
  }
  assert.ok(!(await exists(missing.replace(/\/uploads$/, ""))), "nothing created on the host");
});

rootTest("includesections run first; a cycle is an error before anything is built", async (dir) => {
  const ini = await writeIni(
    dir,
    [
      "[a]",
      "includesections = b",
      "[b]",
      "includesections = c",
      "paths = /usr/bin/true",
      "[c]",
      "includesections = a",
      "[d]",
      "includesections = e",
      "[e]",
      "paths = /usr/bin/true",
      "",
    ].join("\n"),
  );
  const jail = `${dir}/jail`;
  const r = await runTool("jk_init", ["-c", ini, "-j", jail, "a"]);
  assert.equal(r.code, 4);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${ini}:7: includesections cycle: a -> b -> c -> a`));
  assert.ok(!(await exists(jail)), "jail not created");
  const ok = await runTool("jk_init", ["-c", ini, "-j", jail, "d"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(await exists(`${jail}/usr/bin/true`));
});

rootTest("need_logsocket = 0 adds nothing; = 1 adds the jail's /dev/log once", async (dir) => {
  await keepingSocketdIni(async () => {
    const path = await socketdIni();
    const ini = await writeIni(dir, "[no]\nneed_logsocket = 0\n[yes]\nneed_logsocket = 1\n");
    const jail = `${dir}/jail`;
    const before = await Deno.readTextFile(path).catch(() => "");
    const r = await runTool("jk_init", ["-c", ini, "-j", jail, "no"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(path).catch(() => ""), before);
    for (let i = 0; i < 2; i++) {
      const y = await runTool("jk_init", ["-c", ini, "-j", jail, "yes"]);
      assert.equal(y.code, 0, y.stderr);
    }
    const after = await Deno.readTextFile(path);
    assert.equal(after.split(`[${jail}/dev/log]`).length - 1, 1);
    assert.ok(after.startsWith(before), "existing content kept");
    assert.ok((await Deno.lstat(`${jail}/dev`)).isDirectory);
  });
});

rootTest("-l lists sections sorted with their comments, without root", async (dir) => {
  const ini = await writeIni(dir, "[zz]\ncomment = last one\n[aa]\ncomment = first\n[mm]\n");
  await Deno.chmod(ini, 0o644);
  for (const flag of ["-l", "--list"]) {
    const r = await runTool("jk_init", ["-c", ini, flag], { uid: 65534, gid: 65534 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), ["aa - first", "mm", "zz - last one"]);
  }
  const stock = await runTool("jk_init", ["--configfile=" + await siteIni(), "-l"]);
  assert.equal(stock.code, 0, stock.stderr);
  for (const s of ["jk_lsh", "sftp", "scp", "rsync", "basicshell", "git", "perl", "editors"]) {
    assert.match(stock.stdout, new RegExp(`^${s} - \\S`, "m"));
  }
});

rootTest("unknown section, unknown key, malformed ini: one line, exit 4, no jail", async (dir) => {
  const jail = `${dir}/jail`;
  const cases: [string, string, RegExp][] = [
    ["[a]\npaths = /usr/bin/true\n", "nosuch", /no section \[nosuch\]/],
    ["[a]\nincludesections = gone\n", "a", /:2: \[a\] includes unknown section \[gone\]/],
    ["[a]\npathz = /usr/bin/true\n", "a", /:2: unknown key "pathz" in \[a\]/],
    ["[a]\npaths = /usr/bin/true\nthis is not ini\n", "a", /:3: /],
    ["[a]\nneed_logsocket = maybe\n", "a", /:2: .*need_logsocket/],
    ["[a]\npaths = usr/bin/true\n", "a", /:2: paths entry "usr\/bin\/true" must be/],
    ["[DEFAULT]\npaths = /usr/bin/true\n[a]\n", "a", /:1: \[DEFAULT\] is not supported/],
  ];
  for (const [text, section, pattern] of cases) {
    const ini = await writeIni(dir, text);
    const r = await runTool("jk_init", ["-c", ini, "-j", jail, section]);
    assert.equal(r.code, 4, `${JSON.stringify(text)}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, pattern);
    if (section !== "nosuch") assert.match(r.stderr, new RegExp(`^jk_init: ${ini}:\\d+: `));
    assert.ok(!(await exists(jail)), "jail not created");
  }
  const missing = await runTool("jk_init", ["-c", `${dir}/none.ini`, "-j", jail, "a"]);
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /none\.ini: no such file/);
});

rootTest("a jail under a world-writable parent, or a file, is refused (exit 3)", async (dir) => {
  const ini = await writeIni(dir, "[a]\npaths = /usr/bin/true\n");
  const open = `${dir}/open`;
  await Deno.mkdir(open);
  await Deno.chmod(open, 0o777);
  let r = await runTool("jk_init", ["-c", ini, "-j", `${open}/jail`, "a"]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /is writable by others/);
  assert.ok(!(await exists(`${open}/jail`)));

  const tmp = await Deno.makeTempDir({ dir: "/tmp", prefix: "jkt-init-" });
  try {
    r = await runTool("jk_init", ["-c", ini, "-j", `${tmp}/jail`, "a"]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /\/tmp is writable by others/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }

  await Deno.writeTextFile(`${dir}/file`, "");
  r = await runTool("jk_init", ["-c", ini, "-j", `${dir}/file`, "a"]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /is not a directory/);
});

rootTest("symlinks planted in the jail never lead writes outside", async (dir) => {
  const outside = `${dir}/outside`;
  await Deno.mkdir(outside);
  const ini = await writeIni(
    dir,
    "[libs]\npaths = /usr/lib/x86_64-linux-gnu/libz.so.1\n[acct]\nusers = root\n",
  );
  // A jail whose usr/lib leads to a directory outside it.
  const jail = `${dir}/jail`;
  await Deno.mkdir(`${jail}/usr`, { recursive: true });
  await Deno.symlink(outside, `${jail}/usr/lib`);
  let r = await runTool("jk_init", ["-c", ini, "-j", jail, "libs"]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /leads out of the jail/);
  // A jail whose etc leads outside: the safety check refuses it up front.
  const jail2 = `${dir}/jail2`;
  await Deno.mkdir(jail2);
  await Deno.symlink(outside, `${jail2}/etc`);
  r = await runTool("jk_init", ["-c", ini, "-j", jail2, "acct"]);
  assert.equal(r.code, 3, r.stderr);
  // A jail whose etc/passwd is a link to a file outside.
  const jail3 = `${dir}/jail3`;
  await Deno.mkdir(`${jail3}/etc`, { recursive: true });
  await Deno.writeTextFile(`${outside}/passwd`, "keep\n");
  await Deno.symlink(`${outside}/passwd`, `${jail3}/etc/passwd`);
  r = await runTool("jk_init", ["-c", ini, "-j", jail3, "acct"]);
  assert.notEqual(r.code, 0);
  assert.equal(await Deno.readTextFile(`${outside}/passwd`), "keep\n");
  assert.deepEqual(
    [...Deno.readDirSync(outside)].map((e) => e.name),
    ["passwd"],
    "nothing else appeared outside",
  );
});

rootTest("bare names are found on PATH, globs expand, deprecated keys work", async (dir) => {
  const ini = await writeIni(
    dir,
    [
      "[s]",
      "paths = true, jkt-no-such-program, /usr/bin/base[0-9]*",
      "executables = /usr/bin/false",
      "regularfiles = /etc/protocols",
      "directories = /etc/ssh/ssh_config.d",
      "libraries = /usr/lib/x86_64-linux-gnu/libz.so.1",
      "",
    ].join("\n"),
  );
  const jail = `${dir}/jail`;
  const r = await runTool("jk_init", ["-c", ini, "-j", jail, "s"]);
  assert.equal(r.code, 0, r.stderr);
  for (
    const p of [
      "/usr/bin/true",
      "/usr/bin/base32",
      "/usr/bin/base64",
      "/usr/bin/false",
      "/etc/protocols",
      "/etc/ssh/ssh_config.d",
      "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ]
  ) {
    assert.ok(await exists(`${jail}${p}`), p);
  }
  // Merged /usr is reproduced: the loader's /lib64 is the same relative link as on the host.
  assert.equal(await Deno.readLink(`${jail}/lib64`), await Deno.readLink("/lib64"));
  await okInJail(jail, ["/usr/bin/true"]);
});

rootTest("paths_w_owner keeps the owner, paths_w_setuid the setuid bit", async (dir) => {
  const owned = `${dir}/src/owned.txt`;
  await Deno.mkdir(`${dir}/src`);
  await Deno.writeTextFile(owned, "x");
  await Deno.chown(owned, 4321, 4321);
  const ini = await writeIni(
    dir,
    [
      "[plain]",
      `paths = ${owned}, /usr/bin/passwd`,
      "[owner]",
      `paths_w_owner = ${owned}`,
      "[setuid]",
      "paths_w_setuid = /usr/bin/passwd",
      "",
    ].join("\n"),
  );
  const plain = `${dir}/plain`, kept = `${dir}/kept`;
  let r = await runTool("jk_init", ["-c", ini, "-j", plain, "plain"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await Deno.lstat(`${plain}${owned}`)).uid, 0);
  assert.equal((await Deno.lstat(`${plain}/usr/bin/passwd`)).mode! & 0o6000, 0);
  r = await runTool("jk_init", ["-c", ini, "-j", kept, "owner", "setuid"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await Deno.lstat(`${kept}${owned}`)).uid, 4321);
  const host = await Deno.lstat("/usr/bin/passwd");
  assert.equal((await Deno.lstat(`${kept}/usr/bin/passwd`)).mode! & 0o7777, host.mode! & 0o7777);
});

rootTest("long options, the legacy positional jail, -k, -f, usage errors", async (dir) => {
  const ini = await writeIni(dir, "[t]\npaths = /usr/bin/true, /usr/bin/passwd\n");
  const jail = `${dir}/jail`;
  let r = await runTool("jk_init", [
    `--configfile=${ini}`,
    `--jail=${jail}`,
    "--verbose",
    "--hardlink",
    "t",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Processing section \[t\]/);
  // -k links the ordinary file, copies the setuid one without its bit.
  const host = await Deno.lstat("/usr/bin/true");
  assert.equal((await Deno.lstat(`${jail}/usr/bin/true`)).ino, host.ino);
  const passwd = await Deno.lstat(`${jail}/usr/bin/passwd`);
  assert.notEqual(passwd.ino, (await Deno.lstat("/usr/bin/passwd")).ino);
  assert.equal(passwd.mode! & 0o6000, 0);

  // --force replaces a file that differs; the legacy form takes the first word as the jail.
  await Deno.remove(`${jail}/usr/bin/true`);
  await Deno.writeTextFile(`${jail}/usr/bin/true`, "changed");
  r = await runTool("jk_init", ["-c", ini, "--force", jail, "t"]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /section/);
  assert.equal((await Deno.stat(`${jail}/usr/bin/true`)).size, host.size);

  r = await runTool("jk_init", ["--help"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: jk_init/m);
  r = await runTool("jk_init", ["--bogus"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /try --help/);
  r = await runTool("jk_init", ["-c", ini, "-j", jail]);
  assert.equal(r.code, 2);
  r = await runTool("jk_init", ["-c", ini, "-j", jail, "t"], { uid: 65534, gid: 65534 });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /root/);
});

rootTest("kill -9 midway leaves no partial file; a rerun completes the jail", async (dir) => {
  const jail = `${dir}/jail`;
  const child = new Deno.Command(await toolPathUnderTest("jk_init"), {
    args: ["-c", await siteIni(), "-j", jail, "perl", "git"],
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin" },
    stdout: "null",
    stderr: "null",
  }).spawn();
  // Kill as soon as the copying has started (the sections take far longer).
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const started = await exists(`${jail}/usr/lib/x86_64-linux-gnu`);
    if (started) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill("SIGKILL");
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL", "jk_init was killed midway");
  await assertFilesComplete(jail);

  const r = await runTool("jk_init", ["-c", await siteIni(), "-j", jail, "perl", "git"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await assertFilesComplete(jail)) > 1000);
  assert.equal(await okInJail(jail, ["/usr/bin/perl", "-MPOSIX", "-e", "print 1"]), "1");
  assert.match(await okInJail(jail, ["/usr/bin/git", "--version"]), /^git version/);
});

// ---------------------------------------------------------------------------
// Pure parts, without root.

Deno.test("planSections: includes first, each section once, deep chains without a crash", () => {
  const ini = parseIni(
    "[a]\nincludesections = b, c\n[b]\nincludesections = c\n[c]\npaths = /x\n[d]\n",
    "t.ini",
  );
  assert.deepEqual(planSections(ini, ["a", "d", "b"]).map((p) => p.name), ["c", "b", "a", "d"]);
  // 20000 nested includes: iterative, no stack overflow; then a cycle at the end.
  const depth = 20000;
  const chain = Array.from({ length: depth }, (_, i) => `[s${i}]\nincludesections = s${i + 1}\n`);
  const deep = parseIni(`${chain.join("")}[s${depth}]\npaths = /x\n`, "deep.ini");
  assert.equal(planSections(deep, ["s0"]).length, depth + 1);
  const cyclic = parseIni(`${chain.join("")}[s${depth}]\nincludesections = s0\n`, "cyc.ini");
  assert.throws(
    () => planSections(cyclic, ["s0"]),
    /includesections cycle: s0 -> s1 -> s2 -> s3 -> \(19994 more\) -> s19998 -> s19999 -> s20000 -> s0$/,
  );
});

Deno.test("selectAccounts: by name or id, skipping what the jail has by name or id", () => {
  const host = parsePasswd(
    "root:x:0:0:root:/root:/bin/bash\nbin:x:2:2::/bin:/bin/false\nwww:x:33:33::/var/www:/bin/false\n",
  ).entries;
  const jail = parsePasswd("toor:x:0:0::/:/bin/sh\n").entries;
  const pick = selectAccounts(host, jail, ["root", "2", "bin", "www", "ghost"], (e) => e.uid);
  assert.deepEqual(pick.add.map((e) => e.name), ["bin", "www"]);
  assert.deepEqual(pick.present.map((e) => e.name), ["root"]);
  assert.deepEqual(pick.unknown, ["ghost"]);
});

Deno.test("appendLines keeps the existing bytes exactly", () => {
  const latin1 = new Uint8Array([0x61, 0x3a, 0xe9]); // "a:é" in Latin-1, not UTF-8
  const out = appendLines(latin1, ["b"]);
  assert.deepEqual([...out], [0x61, 0x3a, 0xe9, 0x0a, 0x62, 0x0a]);
  assert.deepEqual([...appendLines(new Uint8Array(), ["x"])], [0x78, 0x0a]);
});

Deno.test("listSections: sorted, comments on one line", () => {
  const ini = parseIni("[b]\ncomment = two\n    lines\n[a]\n", "l.ini");
  assert.deepEqual(listSections(ini), ["a", "b - two lines"]);
});

Deno.test("the stock jk_init.ini parses, and every section checks out", async () => {
  const path = new URL("../config/jk_init.ini", import.meta.url).pathname;
  const ini = await loadConfig(path);
  const plans = planSections(ini, ini.names());
  assert.equal(plans.length, ini.names().length);
  for (const s of ini.sections()) assert.ok(s.get("comment"), `[${s.name}] has a comment`);
});
