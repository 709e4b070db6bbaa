/**
 * The copy engine (src/jailcopy.ts) and the jail file layer under it
 * (src/jailfs.ts), on real jails under /var/lib, as root: merged-/usr
 * layout, libraries, setuid stripping, hard links, owners, devices, globs,
 * force, dry runs, and the refusals that keep root's writes inside the jail.
 */
import assert from "node:assert/strict";
import { CopyEngine, type CopyOptions, expandGlob, type Reporter } from "../src/jailcopy.ts";
import { Jail, JailEscapeError, openHostReader } from "../src/jailfs.ts";
import { write } from "../src/libc.ts";
import { runCommand, scratchDir } from "./harness.ts";
import { freshJail, inJail, treeDigest } from "./jailfixtures.ts";

/** A reporter that keeps every line, tagged. */
function collector(): Reporter & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (l) => lines.push(l),
    verbose: (l) => lines.push(`v: ${l}`),
    error: (l) => lines.push(`E: ${l}`),
  };
}

/** Opens `jail`, copies `paths`, closes; returns the engine and its lines. */
function copyInto(
  jail: string,
  paths: string[],
  options: CopyOptions = {},
  open: Parameters<typeof Jail.open>[1] = {},
) {
  const reporter = collector();
  const j = Jail.open(jail, open);
  try {
    const engine = new CopyEngine(j, { reporter, verbose: true });
    engine.copySync(paths, options);
    return { engine, lines: reporter.lines };
  } finally {
    j.close();
  }
}

Deno.test("programs land at their paths with every library, merged /usr reproduced, and run", async () => {
  const { jail, remove } = await freshJail("copy");
  try {
    const { engine, lines } = copyInto(jail, ["/usr/bin/ls", "/usr/bin/perl", "/dev/null"]);
    assert.deepEqual(engine.errors, []);
    assert.equal(await Deno.readLink(`${jail}/lib`), "usr/lib");
    assert.equal(await Deno.readLink(`${jail}/lib64`), "usr/lib64");
    assert.equal(
      await Deno.readLink(`${jail}/usr/lib64/ld-linux-x86-64.so.2`),
      "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    );
    assert.ok((await Deno.lstat(`${jail}/usr/lib/x86_64-linux-gnu/libc.so.6`)).isFile);
    assert.ok(lines.includes(`Copying /usr/bin/ls to ${jail}/usr/bin/ls`));
    // Libraries come before the program that needs them.
    const libc = lines.findIndex((l) => l.startsWith("Copying /lib/x86_64-linux-gnu/libc.so.6"));
    assert.ok(libc >= 0 && libc < lines.indexOf(`Copying /usr/bin/ls to ${jail}/usr/bin/ls`));
    const ls = await inJail(jail, "/usr/bin/ls", ["/usr/bin"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.trim().split("\n"), ["ls", "perl"]);
    const perl = await inJail(jail, "/usr/bin/perl", ["-e", "print 6*7"]);
    assert.equal(perl.stdout, "42", perl.stderr);
    const st = await Deno.stat(`${jail}/usr/bin/ls`);
    assert.equal(st.uid, 0);
    assert.equal(st.mode! & 0o7777, (await Deno.stat("/usr/bin/ls")).mode! & 0o7777);
  } finally {
    await remove();
  }
});

Deno.test("setuid/setgid bits are stripped unless kept; a hard link is never made of such a file", async () => {
  const { jail, remove } = await freshJail("suid");
  try {
    const host = await Deno.stat("/usr/bin/passwd");
    assert.ok(host.mode! & 0o4000, "the host's passwd is setuid root");
    const { lines } = copyInto(jail, ["/usr/bin/passwd"], { checkLibs: false });
    assert.ok(lines.includes(`removing setuid and setgid permissions from ${jail}/usr/bin/passwd`));
    assert.equal((await Deno.stat(`${jail}/usr/bin/passwd`)).mode! & 0o7777, 0o755);

    // -k: ls is linked (same inode), passwd copied (own inode, bit stripped) ...
    const k = copyInto(jail, ["/usr/bin/ls", "/usr/bin/chfn"], {
      hardlink: true,
      checkLibs: false,
    });
    assert.equal((await Deno.stat(`${jail}/usr/bin/ls`)).ino, (await Deno.stat("/usr/bin/ls")).ino);
    const chfn = await Deno.stat(`${jail}/usr/bin/chfn`);
    assert.notEqual(chfn.ino, (await Deno.stat("/usr/bin/chfn")).ino);
    assert.equal(chfn.mode! & 0o6000, 0);
    assert.ok(k.lines.includes("/usr/bin/chfn is setuid or setgid: copying it instead of linking"));

    // ... and with keepSetuid too: copied, bit kept.
    copyInto(jail, ["/usr/bin/su"], { hardlink: true, keepSetuid: true, checkLibs: false });
    const su = await Deno.stat(`${jail}/usr/bin/su`);
    assert.notEqual(su.ino, (await Deno.stat("/usr/bin/su")).ino);
    assert.equal(su.mode! & 0o4000, 0o4000);
  } finally {
    await remove();
  }
});

Deno.test("owners are root unless kept; directories get the host's mode", async () => {
  const { jail, remove } = await freshJail("owner");
  const src = await scratchDir("owner-src");
  try {
    await Deno.mkdir(`${src}/tree/sub`, { recursive: true });
    await Deno.chmod(`${src}/tree`, 0o750);
    await Deno.writeTextFile(`${src}/tree/sub/data`, "x");
    await Deno.chown(`${src}/tree/sub/data`, 12345, 23456);
    copyInto(jail, [`${src}/tree/sub/data`]);
    const plain = await Deno.stat(`${jail}${src}/tree/sub/data`);
    assert.deepEqual([plain.uid, plain.gid], [0, 0]);
    assert.equal((await Deno.stat(`${jail}${src}/tree`)).mode! & 0o7777, 0o750);

    const other = await freshJail("owner2");
    try {
      copyInto(other.jail, [`${src}/tree/sub/data`], { keepOwner: true });
      const kept = await Deno.stat(`${other.jail}${src}/tree/sub/data`);
      assert.deepEqual([kept.uid, kept.gid], [12345, 23456]);
    } finally {
      await other.remove();
    }
  } finally {
    await remove();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("device nodes are made with the host's numbers and mode, once", async () => {
  const { jail, remove } = await freshJail("dev");
  try {
    const reporter = collector();
    const j = Jail.open(jail);
    try {
      const engine = new CopyEngine(j, { reporter, verbose: true });
      assert.ok(engine.createDevice("/dev/null"));
      engine.copySync(["/dev/urandom"]);
      assert.ok(engine.createDevice("/dev/null"));
      assert.ok(!engine.createDevice("/etc/passwd"));
      assert.deepEqual(engine.errors, [
        `cannot create device /etc/passwd in ${jail}: not a character or block device`,
      ]);
    } finally {
      j.close();
    }
    for (const name of ["null", "urandom"]) {
      const ours = await Deno.lstat(`${jail}/dev/${name}`);
      const host = await Deno.lstat(`/dev/${name}`);
      assert.ok(ours.isCharDevice);
      assert.equal(ours.rdev, host.rdev);
      assert.equal(ours.mode! & 0o7777, 0o666);
      assert.equal(ours.uid, 0);
    }
    assert.ok(reporter.lines.includes(`v: Device ${jail}/dev/null does exist already`));
  } finally {
    await remove();
  }
});

Deno.test("directories copy recursively; scripts bring their interpreter; symlinks are recreated", async () => {
  const { jail, remove } = await freshJail("dir");
  const src = await scratchDir("dir-src");
  try {
    await Deno.mkdir(`${src}/app/lib`, { recursive: true });
    await Deno.writeTextFile(`${src}/app/run`, "#!/bin/sh\necho hello from the jail\n");
    await Deno.chmod(`${src}/app/run`, 0o755);
    await Deno.writeTextFile(`${src}/app/lib/data.txt`, "data");
    await Deno.symlink("lib/data.txt", `${src}/app/link`);
    const { engine } = copyInto(jail, [`${src}/app`]);
    assert.deepEqual(engine.errors, []);
    assert.equal(await Deno.readTextFile(`${jail}${src}/app/lib/data.txt`), "data");
    assert.equal(await Deno.readLink(`${jail}${src}/app/link`), "lib/data.txt");
    // /bin/sh -> dash, through bin -> usr/bin, with dash's libraries.
    assert.equal(await Deno.readLink(`${jail}/bin`), "usr/bin");
    const r = await inJail(jail, `${src}/app/run`, []);
    assert.equal(r.stdout, "hello from the jail\n", r.stderr);
  } finally {
    await remove();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("a host symlink to another directory is mirrored and walked (/usr/lib/ssl/certs)", async () => {
  const { jail, remove } = await freshJail("mirror");
  try {
    const { engine } = copyInto(jail, ["/usr/lib/ssl/certs/ca-certificates.crt"]);
    assert.deepEqual(engine.errors, []);
    assert.equal(await Deno.readLink(`${jail}/usr/lib/ssl/certs`), "/etc/ssl/certs");
    assert.ok((await Deno.lstat(`${jail}/etc/ssl/certs/ca-certificates.crt`)).isFile);
  } finally {
    await remove();
  }
});

Deno.test("globs expand like the shell's, without dot files", async () => {
  const src = await scratchDir("glob");
  const { jail, remove } = await freshJail("glob-jail");
  try {
    for (const n of ["a1.conf", "a2.conf", "b.conf", ".a3.conf"]) {
      await Deno.writeTextFile(`${src}/${n}`, n);
    }
    assert.deepEqual(expandGlob(`${src}/a?.conf`), [`${src}/a1.conf`, `${src}/a2.conf`]);
    assert.deepEqual(expandGlob(`${src}/[!a]*.conf`), [`${src}/b.conf`]);
    assert.deepEqual(expandGlob(`${src}/*`).length, 3);
    const { lines } = copyInto(jail, [`${src}/a*.conf`, `${src}/none*`], { glob: true });
    assert.ok(lines.includes(`v: Source file(s) ${src}/none* do not exist`));
    const names = [...Deno.readDirSync(`${jail}${src}`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["a1.conf", "a2.conf"]);
  } finally {
    await remove();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("force replaces only files that differ, atomically, never writing through a hard link", async () => {
  const { base, jail, remove } = await freshJail("force");
  try {
    copyInto(jail, ["/usr/bin/true", "/usr/bin/false"], { checkLibs: false });
    const same = (await Deno.stat(`${jail}/usr/bin/true`)).ino;
    // false: replace the jail's copy by a hard link to a file outside the jail.
    const victim = `${base}/victim`;
    await Deno.writeTextFile(victim, "outside content");
    await Deno.remove(`${jail}/usr/bin/false`);
    await Deno.link(victim, `${jail}/usr/bin/false`);
    const without = copyInto(jail, ["/usr/bin/false"], { checkLibs: false });
    assert.ok(without.lines.includes(`v: ${jail}/usr/bin/false already exists, will not touch it`));
    const { lines } = copyInto(jail, ["/usr/bin/true", "/usr/bin/false"], {
      force: true,
      checkLibs: false,
    });
    assert.ok(lines.includes(`v: ${jail}/usr/bin/true is up to date`));
    assert.equal((await Deno.stat(`${jail}/usr/bin/true`)).ino, same);
    assert.equal(await Deno.readTextFile(victim), "outside content");
    assert.equal((await Deno.stat(victim)).nlink, 1);
    const jailFalse = await Deno.readFile(`${jail}/usr/bin/false`);
    assert.deepEqual(jailFalse, await Deno.readFile("/usr/bin/false"));
  } finally {
    await remove();
  }
});

Deno.test("a dry run prints exactly the lines of the real run and changes nothing", async () => {
  const { jail, remove } = await freshJail("dry");
  try {
    const before = await treeDigest(jail);
    const dry = copyInto(jail, ["/usr/bin/ls", "/usr/lib/ssl/certs/ca-certificates.crt"], {}, {
      dryRun: true,
    });
    assert.equal(await treeDigest(jail), before);
    const real = copyInto(jail, ["/usr/bin/ls", "/usr/lib/ssl/certs/ca-certificates.crt"]);
    assert.deepEqual(dry.lines, real.lines);
    assert.ok(real.lines.length > 5);
  } finally {
    await remove();
  }
});

Deno.test("symlinks in the jail that lead out are refused, by the walk and the fast path", async () => {
  const { base, jail, remove } = await freshJail("escape");
  const outside = `${base}/outside`;
  try {
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${outside}/keep`, "keep");
    await Deno.mkdir(`${jail}/usr`);
    const before = await treeDigest(outside);
    for (const target of [outside, "../../outside", "../../../../../../.." + outside]) {
      await Deno.remove(`${jail}/usr/lib`).catch(() => {});
      await Deno.symlink(target, `${jail}/usr/lib`);
      for (const walkOnly of [false, true]) {
        assert.throws(
          () => copyInto(jail, ["/usr/lib/os-release"], {}, { walkOnly }),
          (e: unknown) =>
            e instanceof JailEscapeError &&
            e.message.includes(`${jail}/usr/lib is a symlink to ${target}, which leads out`),
        );
        const j = Jail.open(jail, { walkOnly });
        try {
          assert.throws(() => j.lookupDir("/usr/lib/x86_64-linux-gnu"), JailEscapeError);
          assert.throws(() => j.readFile("/usr/lib/keep"), JailEscapeError);
        } finally {
          j.close();
        }
      }
    }
    assert.equal(await treeDigest(outside), before);
    assert.deepEqual([...Deno.readDirSync(outside)].map((e) => e.name), ["keep"]);
  } finally {
    await remove();
  }
});

Deno.test("the walk and the fast path resolve the same directories", async () => {
  const { jail, remove } = await freshJail("walk");
  try {
    copyInto(jail, ["/usr/bin/ls"]);
    await Deno.symlink("usr/bin", `${jail}/bin`);
    for (const walkOnly of [false, true]) {
      const j = Jail.open(jail, { walkOnly });
      try {
        assert.equal(j.lookupDir("/lib/x86_64-linux-gnu")?.path, "/usr/lib/x86_64-linux-gnu");
        // In-jail paths are normalised lexically first: /bin/../lib64 is /lib64.
        assert.equal(j.lookupDir("/bin/../lib64")?.path, "/usr/lib64");
        assert.equal(j.lookupDir("/usr/bin")?.path, "/usr/bin");
        assert.equal(j.lookupDir("/nonexistent/x"), null);
        assert.throws(() => j.lookupDir("/usr/bin/ls"), /is not a directory/);
      } finally {
        j.close();
      }
    }
  } finally {
    await remove();
  }
});

Deno.test("files appear complete or not at all; an existing name is not overwritten without replace", async () => {
  const { jail, remove } = await freshJail("atomic");
  try {
    await Deno.mkdir(`${jail}/etc`);
    for (const namedTemporaries of [false, true]) {
      const j = Jail.open(jail, { namedTemporaries });
      try {
        const etc = j.lookupDir("/etc")!;
        assert.throws(() =>
          j.placeFile(
            etc,
            "half",
            (fd) => {
              write(fd, new Uint8Array(4096)); // half the content, then a failure
              throw new Error("interrupted while writing");
            },
            { perm: 0o644, uid: 0, gid: 0 },
            false,
          ), /interrupted/);
        j.writeFile("/etc/passwd", new TextEncoder().encode("root:x:0:0::/:/bin/sh\n"), {
          perm: 0o644,
          uid: 0,
          gid: 0,
        }, { replace: true });
        assert.throws(
          () => j.writeFile("/etc/passwd", new Uint8Array(1), { perm: 0o644, uid: 0, gid: 0 }),
          /EEXIST/,
        );
      } finally {
        j.close();
      }
      assert.deepEqual([...Deno.readDirSync(`${jail}/etc`)].map((e) => e.name), ["passwd"]);
      assert.equal(await Deno.readTextFile(`${jail}/etc/passwd`), "root:x:0:0::/:/bin/sh\n");
    }
  } finally {
    await remove();
  }
});

Deno.test("readFile refuses a jail file hard-linked elsewhere (it may be a host file)", async () => {
  const { base, jail, remove } = await freshJail("hardread");
  try {
    await Deno.mkdir(`${jail}/etc`);
    await Deno.writeTextFile(`${base}/secret`, "host secret");
    await Deno.link(`${base}/secret`, `${jail}/etc/passwd`);
    const j = Jail.open(jail);
    try {
      assert.throws(() => j.readFile("/etc/passwd"), /has 2 hard links; refusing/);
      assert.equal(j.readFile("/etc/group"), null);
    } finally {
      j.close();
    }
  } finally {
    await remove();
  }
});

Deno.test("a malformed ELF file is not copied, and is named; a data file is copied", async () => {
  const { jail, remove } = await freshJail("badelf");
  const src = await scratchDir("badelf-src");
  try {
    const elf = await Deno.readFile("/usr/bin/true");
    await Deno.writeFile(`${src}/truncated`, elf.subarray(0, 100), { mode: 0o755 });
    await Deno.writeTextFile(`${src}/data`, "plain text, not ELF\n", { mode: 0o755 });
    const { engine } = copyInto(jail, [`${src}/truncated`, `${src}/data`]);
    assert.equal(engine.errors.length, 1);
    assert.match(engine.errors[0], new RegExp(`^cannot copy ${src}/truncated: not a valid ELF`));
    assert.equal(await Deno.lstat(`${jail}${src}/truncated`).catch(() => null), null);
    assert.equal(await Deno.readTextFile(`${jail}${src}/data`), "plain text, not ELF\n");
  } finally {
    await remove();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("openHostReader: a FIFO is refused at once, never waited on; a file reads by offset", async () => {
  const dir = await scratchDir("reader");
  try {
    await runCommand("mkfifo", [`${dir}/fifo`]);
    const started = performance.now();
    assert.throws(() => openHostReader(`${dir}/fifo`), /not a regular file/);
    assert.ok(performance.now() - started < 1000, "opening a FIFO must not wait for a writer");
    await Deno.writeTextFile(`${dir}/file`, "0123456789");
    const f = openHostReader(`${dir}/file`);
    try {
      const buf = new Uint8Array(4);
      assert.equal(f.size, 10);
      assert.equal(f.pread(buf, 3), 4);
      assert.equal(new TextDecoder().decode(buf), "3456");
    } finally {
      f.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
