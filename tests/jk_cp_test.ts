/**
 * jk_cp as installed (dev launcher), as root, on real jails under /var/lib:
 * the copied programs run under chroot; setuid handling; every exit code;
 * bad input; attacks through symlinks and hard links planted in the jail;
 * kill -9 in the middle of a run.
 */
import assert from "node:assert/strict";
import { createUser, runTool, scratchDir, toolPathUnderTest } from "./harness.ts";
import { filesDifferingFromHost, freshJail, inJail, treeDigest } from "./jailfixtures.ts";

const PROGRAMS = ["ssh", "rsync", "git", "perl", "vim.basic"];

Deno.test("jk_cp copies ssh rsync git perl vim.basic with their libraries; each runs in the jail", async () => {
  const { jail, remove } = await freshJail("cp");
  try {
    const r = await runTool("jk_cp", ["-j", jail, ...PROGRAMS, "/dev/null"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    // ssh -V wants to know who runs it (glibc's built-in files NSS reads this).
    await Deno.mkdir(`${jail}/etc`);
    await Deno.writeTextFile(`${jail}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
    assert.match(r.stdout, new RegExp(`^Copying /usr/bin/rsync to ${jail}/usr/bin/rsync$`, "m"));
    const versions: [string, string[], RegExp][] = [
      ["/usr/bin/ssh", ["-V"], /OpenSSH/],
      ["/usr/bin/rsync", ["--version"], /rsync\s+version/],
      ["/usr/bin/git", ["--version"], /git version/],
      ["/usr/bin/perl", ["-e", "print qq(perl $])"], /perl 5\./],
      ["/usr/bin/vim.basic", ["--version"], /VIM - Vi IMproved/],
    ];
    for (const [program, args, expected] of versions) {
      const run = await inJail(jail, program, args);
      assert.equal(run.code, 0, `${program}: ${run.stderr}`);
      assert.match(run.stdout + run.stderr, expected);
    }
    assert.equal(await Deno.readLink(`${jail}/lib`), "usr/lib");
  } finally {
    await remove();
  }
});

Deno.test("jk_cp strips setuid unless -s; -k links plain files but copies setuid ones", async () => {
  const { jail, remove } = await freshJail("cp-suid");
  try {
    const plain = await runTool("jk_cp", ["--jail=" + jail, "passwd"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /removing setuid and setgid permissions from .*\/usr\/bin\/passwd/);
    assert.equal((await Deno.stat(`${jail}/usr/bin/passwd`)).mode! & 0o6000, 0);

    const kept = await runTool("jk_cp", ["-j", jail, "-s", "/usr/bin/chfn"]);
    assert.equal(kept.code, 0, kept.stderr);
    assert.equal((await Deno.stat(`${jail}/usr/bin/chfn`)).mode! & 0o4000, 0o4000);

    const linked = await runTool("jk_cp", ["-j", jail, "-k", "-v", "/usr/bin/su", "/usr/bin/id"]);
    assert.equal(linked.code, 0, linked.stderr);
    const su = await Deno.stat(`${jail}/usr/bin/su`);
    assert.notEqual(su.ino, (await Deno.stat("/usr/bin/su")).ino, "a setuid file is never linked");
    assert.equal(su.mode! & 0o6000, 0);
    assert.equal((await Deno.stat(`${jail}/usr/bin/id`)).ino, (await Deno.stat("/usr/bin/id")).ino);
    assert.match(linked.stdout, /Trying to link \/usr\/bin\/id to /);
  } finally {
    await remove();
  }
});

Deno.test("jk_cp -o keeps owner and group, -v tells each directory made; relative names", async () => {
  const { jail, remove } = await freshJail("cp-owner");
  const src = await scratchDir("cp-owner-src");
  try {
    await Deno.writeTextFile(`${src}/owned`, "data");
    await Deno.chown(`${src}/owned`, 4321, 8765);
    const r = await runTool("jk_cp", ["--owner", "--verbose", "--jail", jail, "./owned"], {
      cwd: src,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`Create directory ${jail}${src}\n`), r.stdout);
    const st = await Deno.stat(`${jail}${src}/owned`);
    assert.deepEqual([st.uid, st.gid], [4321, 8765]);
    const plain = await runTool("jk_cp", ["-f", "-j", jail, `${src}/owned`]);
    assert.equal(plain.code, 0, plain.stderr);
    const replaced = await Deno.stat(`${jail}${src}/owned`);
    assert.deepEqual([replaced.uid, replaced.gid], [0, 0], "-f without -o: the owner differs");
  } finally {
    await remove();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("jk_cp exit codes and one-line errors", async () => {
  const { base, jail, remove } = await freshJail("cp-exit");
  try {
    await Deno.writeTextFile(`${base}/plainfile`, "x");
    const cases: [string[], number, RegExp][] = [
      [["--help"], 0, /^Usage: jk_cp/],
      [["-?"], 0, /^Usage: jk_cp/],
      [["--bogus", "-j", jail, "ls"], 1, /^jk_cp: .*bogus.*; try --help$/],
      [["-j", jail], 2, /^jk_cp: need at least a jail directory and a file to copy/],
      [[], 2, /^jk_cp: need at least/],
      [["-j", `${base}/plainfile`, "ls"], 3, new RegExp(`^jk_cp: ${base}/plainfile is not a dir`)],
      [["-j", `${base}/none`, "ls"], 3, /is not a directory$/],
      [["-j", jail, "ls", "no-such-program-xyz"], 4, /^jk_cp: no-such-program-xyz does not exist$/],
      [["-j", jail, `${base}/missing`], 4, new RegExp(`^jk_cp: ${base}/missing does not exist$`)],
    ];
    for (const [args, code, message] of cases) {
      const r = await runTool("jk_cp", args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      const text = (code === 0 ? r.stdout : r.stderr).trim();
      assert.match(text, message, args.join(" "));
      if (code !== 0) assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    // Positional jail (jailkit's legacy form) still works.
    const legacy = await runTool("jk_cp", [jail, "/usr/bin/true"]);
    assert.equal(legacy.code, 0, legacy.stderr);
    // Not root.
    const nobody = await runTool("jk_cp", ["-j", jail, "ls"], { uid: 65534, gid: 65534 });
    assert.equal(nobody.code, 5, nobody.stderr);
    assert.match(nobody.stderr, /^jk_cp: cannot run without root privileges$/m);
    // Nothing was written by the failed runs.
    assert.deepEqual([...Deno.readDirSync(jail)].map((e) => e.name).sort(), [
      "lib",
      "lib64",
      "usr",
    ]);
  } finally {
    await remove();
  }
});

Deno.test("jk_cp refuses unsafe jails: group-writable, under a world-writable parent, a symlink", async () => {
  const { base, jail, remove } = await freshJail("cp-unsafe");
  try {
    await Deno.chmod(jail, 0o775);
    let r = await runTool("jk_cp", ["-j", jail, "ls"]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^jk_cp: jail ${jail} is not safe: ${jail} is writable by group`),
    );
    await Deno.chmod(jail, 0o755);

    await Deno.mkdir(`${base}/shared`, { mode: 0o1777 });
    await Deno.chmod(`${base}/shared`, 0o1777);
    await Deno.mkdir(`${base}/shared/jail`, { mode: 0o755 });
    r = await runTool("jk_cp", ["-j", `${base}/shared/jail`, "ls"]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`${base}/shared is writable by others`));
    assert.deepEqual([...Deno.readDirSync(`${base}/shared/jail`)], []);

    await Deno.symlink(jail, `${base}/link`);
    r = await runTool("jk_cp", ["-j", `${base}/link`, "ls"]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /is a symlink, please point to the real directory/);
  } finally {
    await remove();
  }
});

Deno.test("ATTACK: symlinks planted in the jail to an outside directory: refused, outside untouched", async () => {
  const { base, jail, remove } = await freshJail("cp-attack");
  const outside = `${base}/outside`;
  const user = await createUser();
  try {
    await Deno.mkdir(`${outside}/x86_64-linux-gnu`, { recursive: true });
    await Deno.writeTextFile(`${outside}/x86_64-linux-gnu/libc.so.6`, "not libc");
    await Deno.writeTextFile(`${outside}/passwd`, "outside file");
    const before = await treeDigest(outside);

    // 1. A system directory of the jail replaced by a link out (absolute, or relative
    //    climbing out): jk_cp refuses before writing. usr/lib is caught by the jail
    //    check, usr/lib/x86_64-linux-gnu by the in-jail path walk.
    await Deno.mkdir(`${jail}/usr/lib`, { recursive: true });
    for (const link of ["usr/lib", "usr/lib/x86_64-linux-gnu"]) {
      for (const target of [outside, "../../../.."]) {
        await Deno.remove(`${jail}/${link}`).catch(() => {});
        await Deno.symlink(target, `${jail}/${link}`);
        for (const args of [["ls"], ["-f", "/usr/lib/x86_64-linux-gnu/libc.so.6"]]) {
          const r = await runTool("jk_cp", ["-j", jail, ...args]);
          assert.equal(r.code, 6, r.stdout + r.stderr);
          assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
          assert.match(
            r.stderr,
            new RegExp(
              `${jail}/${link} is a symlink to ${target}, which (leads out of|is outside) `,
            ),
          );
        }
      }
      await Deno.remove(`${jail}/${link}`);
      await Deno.mkdir(`${jail}/${link}`);
    }

    // 2. A home directory the user owns in the jail, with a link to outside in it.
    const home = `${jail}${user.home}`;
    await Deno.mkdir(home, { recursive: true });
    await Deno.chown(home, user.uid, user.gid);
    await Deno.mkdir(`${user.home}/.config`, { recursive: true });
    await Deno.writeTextFile(`${user.home}/.config/app.conf`, "host conf");
    await Deno.symlink(outside, `${home}/.config`); // as the user could
    const r = await runTool("jk_cp", ["-j", jail, `${user.home}/.config/app.conf`]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, new RegExp(`${home}/.config is a symlink to ${outside}`));

    // 3. A jail file hard-linked to an outside file: -f replaces the jail's name only.
    await Deno.mkdir(`${jail}/usr/bin`, { recursive: true });
    await Deno.link(`${outside}/passwd`, `${jail}/usr/bin/true`);
    const hard = await runTool("jk_cp", ["-j", jail, "-f", "/usr/bin/true"]);
    assert.equal(hard.code, 0, hard.stderr);
    assert.notEqual(
      (await Deno.stat(`${jail}/usr/bin/true`)).ino,
      (await Deno.stat(`${outside}/passwd`)).ino,
    );
    assert.equal((await inJail(jail, "/usr/bin/true", [])).code, 0);

    assert.equal(await treeDigest(outside), before);
    assert.equal(await Deno.readTextFile(`${outside}/passwd`), "outside file");
  } finally {
    await user.remove();
    await remove();
  }
});

Deno.test("jk_cp bad input: truncated ELF, unreadable source; nothing half-made; data files copy", async () => {
  const { jail, remove } = await freshJail("cp-bad");
  const src = await scratchDir("cp-bad-src");
  try {
    const elf = await Deno.readFile("/usr/bin/true");
    await Deno.writeFile(`${src}/truncated`, elf.subarray(0, 200), { mode: 0o755 });
    // An ELF file whose DT_NEEDED names a library that exists nowhere.
    const patched = elf.slice();
    const at = new TextDecoder("latin1").decode(patched).indexOf("libc.so.6\0");
    patched[at + 3] = "q".charCodeAt(0);
    await Deno.writeFile(`${src}/needsmissing`, patched, { mode: 0o755 });
    await Deno.writeTextFile(`${src}/notes.txt`, "just data\n", { mode: 0o755 });

    let r = await runTool("jk_cp", ["-j", jail, `${src}/truncated`]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^jk_cp: cannot copy ${src}/truncated: not a valid ELF file`),
    );
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.equal(await Deno.lstat(`${jail}${src}/truncated`).catch(() => null), null);

    r = await runTool("jk_cp", ["-j", jail, `${src}/needsmissing`]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stderr, new RegExp(`${src}/needsmissing needs libq.so.6, which cannot be used`));

    // Root cannot read a write-only sysctl file: named, exit 7, no /proc made in the jail.
    r = await runTool("jk_cp", ["-j", jail, "/proc/sys/vm/drop_caches"]);
    assert.equal(r.code, 7, r.stderr);
    assert.match(
      r.stderr.trim(),
      /^jk_cp: cannot copy \/proc\/sys\/vm\/drop_caches into .*: Permission denied$/,
    );
    assert.equal(await Deno.lstat(`${jail}/proc`).catch(() => null), null);

    r = await runTool("jk_cp", ["-j", jail, `${src}/notes.txt`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${jail}${src}/notes.txt`), "just data\n");
  } finally {
    await remove();
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("jk_cp killed with SIGKILL midway: a rerun completes the jail", async () => {
  const { jail, remove } = await freshJail("cp-kill");
  try {
    const args = [
      "-j",
      jail,
      "perl",
      "/usr/share/perl",
      "/usr/lib/x86_64-linux-gnu/perl",
      "/dev/null",
    ];
    const child = new Deno.Command(await toolPathUnderTest("jk_cp"), {
      args,
      stdout: "null",
      stderr: "null",
      clearEnv: true,
      env: { PATH: "/usr/bin:/bin" },
    }).spawn();
    // Kill as soon as the big directory copy has started.
    for (let i = 0; i < 400; i++) {
      if (await Deno.lstat(`${jail}/usr/share/perl`).catch(() => null)) break;
      await new Promise((ok) => setTimeout(ok, 5));
    }
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL", "the first run was interrupted");
    const partial = await countFiles(jail);

    const r = await runTool("jk_cp", args);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await countFiles(jail)) > partial, "the rerun added the missing files");
    // Every file at its final name is complete: nothing differs from the host.
    assert.deepEqual(await filesDifferingFromHost(jail), []);
    const perl = await inJail(jail, "/usr/bin/perl", [
      "-MPOSIX",
      "-MData::Dumper",
      "-e",
      "print floor(7.5)",
    ]);
    assert.equal(perl.stdout, "7", perl.stderr);
  } finally {
    await remove();
  }
});

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) n += await countFiles(`${dir}/${e.name}`);
    else n++;
  }
  return n;
}
