import assert from "node:assert/strict";
import {
  copyWithLibs,
  createUser,
  runCommand,
  runTool,
  scratchDir,
  toolPathUnderTest,
} from "./harness.ts";
import { FileComparer, KEEP_MAX } from "../src/check/compare.ts";
import { openNonblocking } from "../src/check/nonblocking.ts";
import { jailOfHome, jailRules, PathPrefixes } from "../src/check/config.ts";
import { deviceNumber, walkJail } from "../src/check/tree.ts";
import { finding, FINDING_CODES, formatText } from "../src/check/findings.ts";

/** One line of `jk_check --json`. */
interface Found {
  code: string;
  severity: string;
  path: string;
  message: string;
  jail: string | null;
}

interface CheckRun {
  code: number;
  stderr: string;
  all: Found[];
  /** "code path" of every problem (not notice) of `jail`, sorted. */
  problems(jail: string): string[];
}

/** Runs the installed jk_check with --json and parses its output. */
async function check(args: string[], opts: { uid?: number; gid?: number } = {}): Promise<CheckRun> {
  const r = await runTool("jk_check", ["--json", ...args], opts);
  const all = r.stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Found);
  return {
    code: r.code,
    stderr: r.stderr,
    all,
    problems: (jail) =>
      all.filter((f) => f.jail === jail && f.severity !== "notice").map((f) =>
        `${f.code} ${f.path}`
      )
        .sort(),
  };
}

/** A jail with sleep and passwd (and their libraries), a /dev/null and an etc/. */
async function buildJail(label: string): Promise<string> {
  const jail = await scratchDir(label);
  await copyWithLibs(jail, ["/usr/bin/sleep", "/usr/bin/passwd"]);
  await Deno.mkdir(`${jail}/dev`, { mode: 0o755 });
  await Deno.chmod(`${jail}/dev`, 0o755);
  await mknod(`${jail}/dev/null`, "c", 1, 3);
  return jail;
}

async function mknod(path: string, type: "c" | "b", major: number, minor: number) {
  const r = await runCommand("mknod", ["-m", "0666", path, type, String(major), String(minor)]);
  assert.equal(r.code, 0, r.stderr);
}

/** Writes a config file next to the jail and returns its path. */
async function writeConfig(dir: string, text: string): Promise<string> {
  const path = `${dir}.ini`;
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("a clean jail gives exit 0 and no findings", async () => {
  const jail = await buildJail("check-clean");
  try {
    const r = await check([jail]);
    assert.deepEqual(r.problems(jail), []);
    assert.equal(r.code, 0, JSON.stringify(r.all));
    // The checks out of reach are said, as notices.
    assert.ok(
      r.all.some((f) => f.code === "not-checked" && f.path.includes("protected_hardlinks")),
    );
    assert.ok(r.all.every((f) => f.severity === "notice" || f.jail !== jail));
  } finally {
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("each planted problem is found exactly", async (t) => {
  const jail = await buildJail("check-plant");
  const sleep = `${jail}/usr/bin/sleep`;
  const lib = (name: string) => `${jail}/usr/lib/x86_64-linux-gnu/${name}`;
  /** Plants, checks that exactly `expected` is found, undoes. */
  const planted = async (
    name: string,
    plant: () => Promise<void>,
    undo: () => Promise<void>,
    expected: string[],
  ) => {
    await t.step(name, async () => {
      await plant();
      try {
        const r = await check([jail]);
        assert.deepEqual(r.problems(jail), expected.sort());
        assert.equal(r.code, 1);
      } finally {
        await undo();
      }
      assert.deepEqual((await check([jail])).problems(jail), [], "undo left something behind");
    });
  };
  try {
    assert.deepEqual((await check([jail])).problems(jail), []);

    await planted(
      "setuid file",
      () => Deno.chmod(sleep, 0o4755),
      () => Deno.chmod(sleep, 0o755),
      [`setuid-file ${sleep}`],
    );
    await planted(
      "group-writable directory",
      () => Deno.chmod(`${jail}/usr/bin`, 0o775),
      () => Deno.chmod(`${jail}/usr/bin`, 0o755),
      [`dir-writable-group ${jail}/usr/bin`],
    );

    const original = await Deno.readFile(sleep);
    await planted(
      "binary with only its middle byte changed",
      async () => {
        const changed = original.slice();
        changed[changed.length >> 1] ^= 0x01;
        await Deno.writeFile(sleep, changed);
      },
      () => Deno.writeFile(sleep, original),
      [`file-differs ${sleep}`],
    );

    const libc = lib("libc.so.6");
    await planted(
      "world-writable system file",
      () => Deno.chmod(libc, 0o757),
      () => Deno.chmod(libc, 0o755),
      [`system-file-writable ${libc}`],
    );
    await planted(
      "extra device node",
      () => mknod(`${jail}/dev/sda`, "b", 8, 0),
      () => Deno.remove(`${jail}/dev/sda`),
      [`device-node ${jail}/dev/sda`],
    );
    await planted(
      "character device outside the allowlist, even named like an allowed one",
      async () => {
        await Deno.remove(`${jail}/dev/null`);
        await mknod(`${jail}/dev/null`, "c", 1, 1); // /dev/mem's numbers
      },
      async () => {
        await Deno.remove(`${jail}/dev/null`);
        await mknod(`${jail}/dev/null`, "c", 1, 3);
      },
      [`device-node ${jail}/dev/null`],
    );

    // /var/lib and /usr must share a filesystem for the hard link to be possible.
    assert.equal((await Deno.stat(jail)).dev, (await Deno.stat("/usr/bin/passwd")).dev);
    const passwd = `${jail}/usr/bin/passwd`;
    await planted(
      "hard link to the host's setuid passwd",
      async () => {
        await Deno.remove(passwd);
        await Deno.link("/usr/bin/passwd", passwd);
      },
      async () => {
        await Deno.remove(passwd);
        await Deno.copyFile("/usr/bin/passwd", passwd);
        await Deno.chmod(passwd, 0o755);
      },
      [`hardlink-outside ${passwd}`, `setuid-file ${passwd}`],
    );

    // libpam_misc is needed by passwd alone.
    const misc = lib("libpam_misc.so.0");
    const target = await Deno.readLink(misc);
    await planted(
      "missing library",
      () => Deno.remove(misc),
      () => Deno.symlink(target, misc),
      [`dependency-missing ${passwd}`],
    );

    // tar needs libacl, which the jail lacks; in a world-writable directory the
    // resolver must not open it (a user could swap it for a FIFO and hang us).
    await planted(
      "programs in a directory users can change are left out of the closure",
      async () => {
        await Deno.mkdir(`${jail}/tmp`);
        await Deno.chmod(`${jail}/tmp`, 0o1777);
        await Deno.copyFile("/usr/bin/tar", `${jail}/tmp/tar`);
      },
      () => Deno.remove(`${jail}/tmp`, { recursive: true }),
      [
        `dir-writable-group ${jail}/tmp`,
        `dir-writable-others ${jail}/tmp`,
        `host-file-missing ${jail}/tmp/tar`,
      ],
    );

    await Deno.mkdir(`${jail}/etc`, { mode: 0o755 });
    await planted(
      "etc/ld.so.preload",
      () => Deno.writeTextFile(`${jail}/etc/ld.so.preload`, "/lib/x86_64-linux-gnu/libc.so.6\n"),
      () => Deno.remove(`${jail}/etc/ld.so.preload`),
      [`host-file-missing ${jail}/etc/ld.so.preload`, `ld-so-preload ${jail}/etc/ld.so.preload`],
    );
    await planted(
      "etc/jailkit not owned by root",
      async () => {
        await Deno.mkdir(`${jail}/etc/jailkit`, { mode: 0o755 });
        await Deno.chown(`${jail}/etc/jailkit`, 65534, 0);
      },
      () => Deno.remove(`${jail}/etc/jailkit`),
      [`jail-ini-not-root ${jail}/etc/jailkit`],
    );
    // Deno removes a unix socket's file when its listener closes.
    let listeners: Deno.Listener[] = [];
    await planted(
      "named pipe and socket (the jail's dev/log socket is allowed)",
      async () => {
        await runCommand("mkfifo", [`${jail}/dev/pipe`]);
        listeners = ["log", "sock"].map((name) =>
          Deno.listen({ transport: "unix", path: `${jail}/dev/${name}` })
        );
      },
      async () => {
        for (const l of listeners) l.close();
        await Deno.remove(`${jail}/dev/pipe`);
      },
      [`fifo ${jail}/dev/pipe`, `socket ${jail}/dev/sock`],
    );
    // printf makes the byte 0xff, which no UTF-8 string can hold.
    const notUtf8 = (cmd: string) =>
      runCommand("sh", ["-c", `${cmd} "$(printf '%s/dev/x\\377' "$0")"`, jail]);
    await planted(
      "a file name that is not UTF-8 cannot hide",
      async () => assert.equal((await notUtf8("touch")).code, 0),
      async () => assert.equal((await notUtf8("rm")).code, 0),
      [`walk-error ${jail}/dev/x\uFFFD`],
    );
  } finally {
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("a jail large enough for worker threads: their findings come back exactly", async () => {
  const jail = await buildJail("check-large");
  try {
    // Enough executables and same-size files for several batches of each kind.
    const programs = ["ls", "cat", "cp", "mv", "rm", "ln", "mkdir", "chmod", "touch", "head"]
      .concat(["tail", "wc", "sort", "cut", "tr", "grep", "sed", "tar", "gzip", "date", "du"])
      .concat(["env", "id", "stat", "readlink", "uniq", "df", "rmdir", "chown"])
      .map((p) => `/usr/bin/${p}`);
    await copyWithLibs(jail, programs);
    const zones = "/usr/share/zoneinfo/America";
    await Deno.mkdir(`${jail}${zones}`, { recursive: true });
    for (const e of [...Deno.readDirSync(zones)].filter((e) => e.isFile).slice(0, 120)) {
      await Deno.copyFile(`${zones}/${e.name}`, `${jail}${zones}/${e.name}`);
    }
    for (const dir of ["/usr/share/zoneinfo", "/usr/share"]) {
      await Deno.chmod(`${jail}${dir}`, 0o755);
    }
    assert.deepEqual((await check([jail])).problems(jail), []);

    const names = [...Deno.readDirSync(`${jail}${zones}`)].map((e) => e.name).sort();
    const changed = names.map((n) => `${jail}${zones}/${n}`).filter((_, i) => i % 40 === 7);
    for (const path of changed) {
      const bytes = await Deno.readFile(path);
      bytes[bytes.length >> 1] ^= 0x20;
      await Deno.writeFile(path, bytes);
    }
    await Deno.remove(`${jail}/usr/lib/x86_64-linux-gnu/libpam_misc.so.0`);
    const r = await check([jail]);
    assert.deepEqual(
      r.problems(jail),
      [
        `dependency-missing ${jail}/usr/bin/passwd`,
        ...changed.map((p) => `file-differs ${p}`),
      ].sort(),
    );
  } finally {
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("users: changed ids, /./ users without jk_chrootsh, homes that do not match", async () => {
  const jail = await buildJail("check-users");
  const changed = await createUser();
  const jailed = await createUser({ home: `${jail}/./home/placeholder` });
  // useradd made the jailed user's home, with skeleton files the host does not have.
  const config = await writeConfig(
    jail,
    `[${jail}]\nignorepathoncompare = ${jail}/etc, ${jail}/home\n`,
  );
  try {
    await Deno.mkdir(`${jail}/etc`, { mode: 0o755 });
    const lines = [
      "root:x:0:0:root:/root:/bin/sh",
      `${changed.name}:x:${changed.uid + 1}:${changed.gid}::/home/${changed.name}:/bin/sh`,
      `${jailed.name}:x:${jailed.uid}:${jailed.gid}::/home/elsewhere:/bin/sh`,
      "not a passwd line",
    ];
    await Deno.writeTextFile(`${jail}/etc/passwd`, lines.join("\n") + "\n");
    const r = await check(["-c", config, jail]);
    const passwd = `${jail}/etc/passwd`;
    assert.deepEqual(r.problems(jail), [
      `jail-passwd-malformed ${passwd}`,
      `user-changed ${passwd}`,
      `user-home-mismatch ${passwd}`,
      `user-shell-not-chrootsh /etc/passwd`,
    ]);
    const shell = r.all.find((f) => f.code === "user-shell-not-chrootsh")!;
    assert.match(shell.message, new RegExp(`user ${jailed.name} has a /\\./ but`));

    // A /./ user missing from the jail's passwd.
    await Deno.writeTextFile(`${jail}/etc/passwd`, lines[0] + "\n");
    const r2 = await check(["-c", config, jail]);
    assert.ok(r2.problems(jail).includes(`user-not-in-jail ${passwd}`), r2.problems(jail).join());
  } finally {
    await changed.remove();
    await jailed.remove();
    await Deno.remove(config);
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("config: sections, /./ homes, [DEFAULT], ignore keys, unknown keys", async () => {
  const jailA = await buildJail("check-cfg-a");
  const jailB = await buildJail("check-cfg-b");
  // The shell jk_check expects is the jk_chrootsh of the install under test.
  const shell = await toolPathUnderTest("jk_chrootsh");
  const user = await createUser({ home: `${jailB}/./home/u`, shell });
  const sleepA = `${jailA}/usr/bin/sleep`;
  const config = await writeConfig(
    jailA,
    [
      "[DEFAULT]",
      `ignorewritableforgroup = /nonexistent`,
      `ignorepathoncompare = ${jailB}/home`, // useradd's skeleton files in the /./ home
      `[${jailA}/]`,
      `ignoresetuidexecuteforuser = ${sleepA}`,
      `ignoresetuidexecuteforgroup = ${sleepA}`,
      `ignorewritableforgroup = ${jailA}/usr/b`,
      "frobnicate = 1",
      `ignorefindings = device-node ${jailA}/dev/sda, no-such-code`,
    ].join("\n") + "\n",
  );
  try {
    await Deno.chmod(sleepA, 0o4754); // setuid, executable for user and group: both ignored
    await Deno.chmod(`${jailA}/usr/bin`, 0o775); // "/usr/b" must not cover "/usr/bin"
    await mknod(`${jailA}/dev/sda`, "b", 8, 0);
    await Deno.chmod(`${jailB}/usr/bin/sleep`, 0o2755);
    const r = await check(["-c", config]);
    assert.deepEqual(r.problems(jailA), [
      `config-bad-value ${config}`, // "no-such-code", reported for the jail whose section has it
      `dir-writable-group ${jailA}/usr/bin`,
    ]);
    // jailB comes from the user's /./ home; its user is not in its (missing) etc/passwd.
    assert.deepEqual(r.problems(jailB), [
      `setgid-file ${jailB}/usr/bin/sleep`,
      `user-not-in-jail ${jailB}/etc/passwd`,
    ]);
    const codes = r.all.filter((f) => f.jail === null).map((f) => f.code);
    assert.ok(codes.includes("config-unknown-key"), codes.join());
    assert.ok(
      r.all.some((f) => f.code === "config-bad-value" && f.message.includes("no-such-code")),
    );
    assert.equal(r.code, 1);

    const lenient = await runTool("jk_check", ["--exit-zero", "-c", config, jailA]);
    assert.equal(lenient.code, 0);
    assert.match(
      lenient.stdout,
      /^WARNING: \S+\/usr\/bin is writable for group! \[dir-writable-group\]$/m,
    );
  } finally {
    await user.remove();
    await Deno.remove(config);
    await Deno.remove(jailA, { recursive: true });
    await Deno.remove(jailB, { recursive: true });
  }
});

Deno.test("bad input: missing jail, relative jail, garbage config; the run goes on", async () => {
  const jail = await buildJail("check-bad");
  const config = await writeConfig(jail, "[unterminated\n\x01garbage");
  try {
    await Deno.chmod(`${jail}/usr/bin/sleep`, 0o4755);
    const missing = `${jail}-does-not-exist`;
    const r = await check(["-c", config, missing, "relative/jail", jail]);
    assert.equal(r.code, 1);
    assert.deepEqual(r.problems(missing), [`jail-missing ${missing}`]);
    assert.deepEqual(r.problems(jail), [`setuid-file ${jail}/usr/bin/sleep`]);
    const general = r.all.filter((f) => f.jail === null).map((f) => `${f.code} ${f.path}`);
    assert.ok(general.includes(`config-invalid ${config}`), general.join());
    assert.ok(general.includes("jail-invalid relative/jail"), general.join());
    assert.equal(r.stderr, "");

    const codes = await runTool("jk_check", ["--codes"]);
    assert.deepEqual(
      codes.stdout.trim().split("\n").map((l) => l.split(" ")[0]),
      Object.keys(FINDING_CODES),
    );

    const usage = await runTool("jk_check", ["--bogus"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^jk_check: .*--bogus.*; try --help\n$/);
  } finally {
    await Deno.remove(config);
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("run by a non-root user: unreadable files and directories are findings", async () => {
  const jail = await buildJail("check-nonroot");
  const user = await createUser();
  try {
    const secret = `${jail}/usr/bin/passwd`;
    await Deno.chmod(secret, 0o700); // root-only, like a real setuid-less admin tool
    await Deno.mkdir(`${jail}/usr/share/private`, { recursive: true, mode: 0o700 });
    await Deno.chmod(`${jail}/usr/share`, 0o755);
    const r = await check([jail], { uid: user.uid, gid: user.gid });
    assert.deepEqual(r.problems(jail), [
      `compare-unreadable ${secret}`,
      `elf-unusable ${secret}`,
      `walk-error ${jail}/usr/share/private`,
    ]);
  } finally {
    await user.remove();
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("hostile file names cannot forge output lines", async () => {
  const jail = await buildJail("check-names");
  try {
    const evil = `${jail}/dev/x\nERROR: nothing to see`;
    await runCommand("mkfifo", [evil]);
    const text = await runTool("jk_check", [jail]);
    const lines = text.stdout.split("\n").filter((l) => l.includes(jail));
    assert.deepEqual(lines, [
      `WARNING: ${jail}/dev/x\\x0aERROR: nothing to see is a named pipe [fifo]`,
    ]);
    const json = await check([jail]);
    assert.deepEqual(json.problems(jail), [`fifo ${evil}`]);
  } finally {
    await Deno.remove(jail, { recursive: true });
  }
});

Deno.test("whole-file comparison finds one changed byte anywhere, also across chunks", () => {
  const dir = Deno.makeTempDirSync({ dir: "/var/lib", prefix: "jktest-cmp-" });
  try {
    const size = 3 * 256 * 1024 + 17;
    const data = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
    Deno.writeFileSync(`${dir}/a`, data);
    const cmp = new FileComparer(openNonblocking);
    // Both openers, and with `keep` (the jail file read whole, for the ELF parse).
    const ways = [{}, { trusted: true }, { trusted: true, keep: true }, { keep: true }];
    for (const at of [0, 1, 1024, size >> 1, 256 * 1024 - 1, 256 * 1024, size - 2, size - 1]) {
      const changed = data.slice();
      changed[at] ^= 0x80;
      Deno.writeFileSync(`${dir}/b`, changed);
      for (const how of ways) {
        const r = cmp.compare(`${dir}/a`, `${dir}/b`, size, how);
        assert.deepEqual(r, { kind: "differs", offset: at }, JSON.stringify(how));
        assert.equal(cmp.kept(), null);
      }
    }
    Deno.writeFileSync(`${dir}/b`, data);
    for (const how of ways) {
      assert.deepEqual(cmp.compare(`${dir}/a`, `${dir}/b`, size, how), { kind: "same" });
      assert.deepEqual(cmp.kept(), "keep" in how ? data : null);
    }
    Deno.writeFileSync(`${dir}/b`, data.subarray(0, size - 1)); // shrank since the size check
    for (const how of ways) {
      assert.deepEqual(cmp.compare(`${dir}/a`, `${dir}/b`, size, how), {
        kind: "differs",
        offset: size - 1,
      });
    }
    for (const how of ways) {
      const gone = cmp.compare(`${dir}/a`, `${dir}/missing`, size, how);
      assert.deepEqual(gone, {
        kind: "unreadable",
        path: `${dir}/missing`,
        reason: "no such file or directory",
      });
    }
    // A file above KEEP_MAX is compared but not kept (the closure opens it again instead).
    const big = new Uint8Array(KEEP_MAX + 1).fill(7);
    Deno.writeFileSync(`${dir}/a`, big);
    Deno.writeFileSync(`${dir}/b`, big);
    const r = cmp.compare(`${dir}/a`, `${dir}/b`, big.length, { trusted: true, keep: true });
    assert.deepEqual([r, cmp.kept()], [{ kind: "same" }, null]);
    // Untrusted pairs need the non-blocking opener; without one, nothing is opened.
    assert.throws(() => new FileComparer().compare(`${dir}/a`, `${dir}/b`, 1), /untrusted/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("only pairs in directories root alone can change are opened without O_NONBLOCK", async () => {
  // The jail holds, under one host directory H (root's, 0755) and its twin W
  // (0777: anyone can swap a file there for a FIFO), a file in a jail
  // directory that is root's and one in a jail directory that is 0777.
  const host = await scratchDir("check-trust-host");
  const jail = await scratchDir("check-trust");
  try {
    const H = `${host}/root-only`, W = `${host}/writable`;
    const bytes = new TextEncoder().encode("same on both sides\n");
    for (const dir of [H, W]) {
      Deno.mkdirSync(dir, { mode: 0o755 });
      Deno.writeFileSync(`${dir}/f`, bytes);
      Deno.mkdirSync(`${jail}${dir}`, { recursive: true });
      Deno.writeFileSync(`${jail}${dir}/f`, bytes);
      Deno.mkdirSync(`${jail}${dir}/open`);
      Deno.chmodSync(`${jail}${dir}/open`, 0o777);
      Deno.mkdirSync(`${dir}/open`, { mode: 0o755 });
      Deno.writeFileSync(`${dir}/open/f`, bytes);
      Deno.writeFileSync(`${jail}${dir}/open/f`, bytes);
    }
    Deno.chmodSync(W, 0o777);
    for (let d = `${jail}${host}`; d !== jail; d = d.slice(0, d.lastIndexOf("/"))) {
      Deno.chmodSync(d, 0o755);
    }
    Deno.chmodSync(`${jail}${H}`, 0o755);
    Deno.chmodSync(`${jail}${W}`, 0o755);
    // A host symlink to a root-only file is not trusted either: the link may lead anywhere.
    Deno.symlinkSync(`${H}/f`, `${H}/link`);
    Deno.writeFileSync(`${jail}${H}/link`, bytes);

    const seen = new Map<string, boolean>();
    walkJail({
      rules: jailRules(null, jail, "command line", []),
      report: () => {},
      compareContents: (_path, hostPath, _size, trusted) => seen.set(hostPath, trusted),
      executable: () => {},
      ancestorsSafe: true,
      hostSystemDevs: new Set(),
    }, Deno.lstatSync(jail));
    assert.deepEqual(Object.fromEntries(seen), {
      [`${H}/f`]: true,
      [`${H}/link`]: false,
      [`${H}/open/f`]: false,
      [`${W}/f`]: false,
      [`${W}/open/f`]: false,
    });
  } finally {
    await Deno.remove(jail, { recursive: true });
    await Deno.remove(host, { recursive: true });
  }
});

Deno.test("a file swapped for a FIFO after the size check cannot hang the comparison", async () => {
  const dir = await scratchDir("check-fifo");
  try {
    await runCommand("mkfifo", [`${dir}/fifo`]);
    // In a child with a deadline: an open(2) that blocked on the FIFO would never return.
    const module = new URL("../src/check/compare.ts", import.meta.url).href;
    const opener = new URL("../src/check/nonblocking.ts", import.meta.url).href;
    const code = `import { FileComparer } from "${module}";
      import { openNonblocking } from "${opener}";
      const cmp = new FileComparer(openNonblocking);
      console.log(JSON.stringify(cmp.compare("${dir}/fifo", "/etc/passwd", 100)));`;
    const r = await runCommand("timeout", ["20", Deno.execPath(), "eval", "--no-config", code]);
    assert.equal(r.code, 0, `comparison blocked or failed: ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), { kind: "differs", offset: 0 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("small helpers: device numbers, path prefixes, /./ homes, codes", () => {
  assert.equal(deviceNumber(0x0103), "1:3");
  assert.equal(deviceNumber(0x10303), "259:3"); // major above 255 (nvme)
  assert.equal(deviceNumber(0x10082c), "8:300"); // minor above 255
  const p = new PathPrefixes(["/j/home/"]);
  assert.ok(p.covers("/j/home") && p.covers("/j/home/u/x"));
  assert.ok(!p.covers("/j/homer") && !p.covers("/j"));
  assert.ok(new PathPrefixes(["/"]).covers("/anything"));
  assert.equal(jailOfHome("/srv/jail/./home/a"), "/srv/jail");
  assert.equal(jailOfHome("/srv/j/./x/./y"), "/srv/j");
  assert.equal(jailOfHome("/home/a"), null);
  assert.equal(
    formatText(finding("fifo", "/j/p", "/j/p is a named pipe", "/j")),
    "WARNING: /j/p is a named pipe [fifo]",
  );
  for (const [code, info] of Object.entries(FINDING_CODES)) {
    assert.match(code, /^[a-z0-9-]+$/);
    assert.ok(["error", "warning", "notice"].includes(info.severity));
  }
});
