/**
 * jk_update as installed (dev launcher), as root, on jails built with jk_cp:
 * updates, removals, symlink renewal, the dry run, skips, jk_update.ini
 * (hardlinks honoured), exit codes, and attacks through planted links.
 */
import assert from "node:assert/strict";
import { createUser, runTool, testSite } from "./harness.ts";
import { filesDifferingFromHost, freshJail, inJail, treeDigest } from "./jailfixtures.ts";

/** A jail holding ls and perl, built by jk_cp. */
async function builtJail(label: string) {
  const made = await freshJail(label);
  const r = await runTool("jk_cp", ["-j", made.jail, "ls", "perl", "/dev/null"]);
  assert.equal(r.code, 0, r.stderr);
  return made;
}

/** Plants the differences a host upgrade leaves behind. */
async function ageJail(jail: string): Promise<void> {
  const lib = `${jail}/usr/lib/x86_64-linux-gnu`;
  await Deno.writeTextFile(`${jail}/usr/bin/ls`, "an old ls", { append: true });
  await Deno.writeTextFile(`${jail}/usr/bin/gone-from-host`, "old tool");
  await Deno.mkdir(`${lib}/oldplugins/sub`, { recursive: true });
  await Deno.writeTextFile(`${lib}/oldplugins/sub/p.so`, "old plugin");
  // libpcre2-8.so.0 -> libpcre2-8.so.0.11.2 as it was before an "upgrade".
  await Deno.remove(`${lib}/libpcre2-8.so.0`);
  await Deno.symlink("libpcre2-8.so.0.10.0", `${lib}/libpcre2-8.so.0`);
  await Deno.writeTextFile(`${lib}/libpcre2-8.so.0.10.0`, "old library");
}

Deno.test("jk_update replaces what differs, renews links, removes what the host dropped; -d prints the same", async () => {
  const { jail, remove } = await builtJail("up");
  try {
    await ageJail(jail);
    const before = await treeDigest(jail);
    const dry = await runTool("jk_update", ["-j", jail, "-d"]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.stderr, "jk_update: dry run: nothing is changed\n");
    assert.equal(await treeDigest(jail), before, "the dry run changed nothing");

    const real = await runTool("jk_update", ["-j", jail]);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(real.stdout, dry.stdout, "the dry run printed what the real run did");
    const lib = `${jail}/usr/lib/x86_64-linux-gnu`;
    for (
      const line of [
        `updating outdated file ${jail}/usr/bin/ls`,
        `Copying /usr/bin/ls to ${jail}/usr/bin/ls`,
        `updating outdated file ${lib}/libpcre2-8.so.0`,
        `Creating symlink ${lib}/libpcre2-8.so.0 to libpcre2-8.so.0.11.2`,
        `removing deprecated file ${jail}/usr/bin/gone-from-host`,
        `removing deprecated file ${lib}/libpcre2-8.so.0.10.0`,
        `removing deprecated file ${lib}/oldplugins/sub/p.so`,
        `removing deprecated directory ${lib}/oldplugins/sub`,
        `removing deprecated directory ${lib}/oldplugins`,
      ]
    ) assert.ok(real.stdout.split("\n").includes(line), `${line}\n---\n${real.stdout}`);

    assert.deepEqual(await filesDifferingFromHost(jail), []);
    assert.equal(await Deno.readLink(`${lib}/libpcre2-8.so.0`), "libpcre2-8.so.0.11.2");
    const ls = await inJail(jail, "/usr/bin/ls", ["/usr/bin"]);
    assert.equal(ls.stdout, "ls\nperl\n", ls.stderr);

    const again = await runTool("jk_update", ["-j", jail]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, "", "nothing left to do");
  } finally {
    await remove();
  }
});

Deno.test("jk_update -s skips paths (repeatable); -k hard-links updated files", async () => {
  const { jail, remove } = await builtJail("up-skip");
  try {
    await ageJail(jail);
    const r = await runTool("jk_update", [
      "-j",
      jail,
      "-s",
      "/usr/bin/ls",
      "--skip",
      `${jail}/usr/lib/x86_64-linux-gnu`,
      "-k",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`skip ${jail}/usr/bin/ls\n`), r.stdout);
    assert.ok(r.stdout.includes(`skip ${jail}/usr/lib/x86_64-linux-gnu\n`), r.stdout);
    assert.match(await Deno.readTextFile(`${jail}/usr/bin/ls`), /an old ls$/);
    assert.ok(await Deno.lstat(`${jail}/usr/lib/x86_64-linux-gnu/oldplugins`));
    assert.equal(await Deno.lstat(`${jail}/usr/bin/gone-from-host`).catch(() => null), null);

    const k = await runTool("jk_update", ["-j", jail, "-k", "/usr/bin"]);
    assert.equal(k.code, 0, k.stderr);
    assert.equal((await Deno.stat(`${jail}/usr/bin/ls`)).ino, (await Deno.stat("/usr/bin/ls")).ino);
  } finally {
    await remove();
  }
});

Deno.test("jk_update -c reads skips, directories and hardlinks from jk_update.ini", async () => {
  const { jail, remove } = await builtJail("up-ini");
  const ini = `${(await testSite()).sysconfdir}/jk_update.ini`;
  const original = await Deno.readTextFile(ini);
  try {
    await ageJail(jail);
    await Deno.writeTextFile(
      ini,
      `${original}\n[${jail}]\nskips = ${jail}/usr/bin/gone-from-host\n` +
        `directories = /usr/bin\nhardlinks = yes\n`,
    );
    const r = await runTool("jk_update", ["-c", jail]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await Deno.stat(`${jail}/usr/bin/ls`)).ino, (await Deno.stat("/usr/bin/ls")).ino);
    assert.ok(await Deno.lstat(`${jail}/usr/bin/gone-from-host`), "skipped");
    // Only /usr/bin was scanned: the old plugin directory is still there.
    assert.ok(await Deno.lstat(`${jail}/usr/lib/x86_64-linux-gnu/oldplugins`));

    const missing = await runTool("jk_update", ["-c", "/no/such/jail"]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `jk_update: section /no/such/jail does not exist in ${ini}\n`);
  } finally {
    await Deno.writeTextFile(ini, original);
    await remove();
  }
});

Deno.test("jk_update exit codes", async () => {
  const { base, jail, remove } = await builtJail("up-exit");
  try {
    await Deno.writeTextFile(`${base}/file`, "x");
    const cases: [string[], number, RegExp][] = [
      [["--help"], 0, /^Usage: jk_update/],
      [["-j", jail, "-c", jail], 21, /^jk_update: cannot specify both a jail and a configsection$/],
      [[], 1, /^jk_update: need a jail \(-j\) or a config section \(-c\); try --help$/],
      [["-j", jail, "--frobnicate"], 1, /frobnicate.*; try --help$/],
      [["-j", `${base}/file`], 3, /is not a directory$/],
      [["-j", "relative/jail"], 1, /^jk_update: jail must be an absolute path: relative\/jail$/],
    ];
    for (const [args, code, message] of cases) {
      const r = await runTool("jk_update", args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match((code === 0 ? r.stdout : r.stderr).trim(), message);
    }
    const nobody = await runTool("jk_update", ["-j", jail], { uid: 65534, gid: 65534 });
    assert.equal(nobody.code, 5);
    await Deno.chmod(jail, 0o770);
    const unsafe = await runTool("jk_update", ["-j", jail]);
    assert.equal(unsafe.code, 6);
    assert.match(unsafe.stderr, /is not safe: .* is writable by group/);
  } finally {
    await remove();
  }
});

Deno.test("ATTACK: jk_update never acts through links out of the jail, nor in users' directories", async () => {
  const { base, jail, remove } = await builtJail("up-attack");
  const outside = `${base}/outside`;
  const user = await createUser();
  try {
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${outside}/victim`, "outside content");
    await Deno.writeTextFile(`${outside}/deprecated-victim`, "outside too");
    const before = await treeDigest(outside);

    // A jail file hard-linked to an outside file: replaced by name, the inode untouched.
    await Deno.remove(`${jail}/usr/bin/ls`);
    await Deno.link(`${outside}/victim`, `${jail}/usr/bin/ls`);
    // A deprecated jail file hard-linked to an outside file: only the jail's name goes.
    await Deno.link(`${outside}/deprecated-victim`, `${jail}/usr/bin/obsolete`);
    // A directory a user owns inside a scanned tree: left alone entirely.
    await Deno.mkdir(`${jail}/usr/userdata`);
    await Deno.chown(`${jail}/usr/userdata`, user.uid, user.gid);
    await Deno.writeTextFile(`${jail}/usr/userdata/mine`, "user file");
    const r = await runTool("jk_update", ["-j", jail]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await treeDigest(outside), before);
    assert.equal(await Deno.readTextFile(`${jail}/usr/userdata/mine`), "user file");
    assert.equal((await inJail(jail, "/usr/bin/ls", ["/"])).code, 0);

    // A system directory of the jail turned into a link out: refused, exit 6.
    await Deno.rename(`${jail}/usr/lib/x86_64-linux-gnu`, `${base}/moved`);
    await Deno.symlink(outside, `${jail}/usr/lib/x86_64-linux-gnu`);
    const refused = await runTool("jk_update", ["-j", jail]);
    assert.equal(refused.code, 6, refused.stdout + refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(`${jail}/usr/lib/x86_64-linux-gnu is a symlink to ${outside}, which leads out`),
    );
    assert.equal(await treeDigest(outside), before);
  } finally {
    await user.remove();
    await remove();
  }
});
