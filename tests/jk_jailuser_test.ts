/**
 * jk_jailuser against real accounts and jails: what it writes into the jail,
 * what usermod changes on the host, how -m moves a home (as the user), and
 * what it refuses. The last step of the first test logs in through the
 * installed jk_chrootsh, so the two tools are shown to fit together.
 */
import assert from "node:assert/strict";
import { addGroupMember, addUserLine, jailHomeFor, newHostHome } from "../src/jk_jailuser.ts";
import {
  copyWithLibs,
  createUser,
  runCommand,
  runTool,
  scratchDir,
  testPrefix,
  type TestUser,
  toolPathUnderTest,
} from "./harness.ts";

interface Fixture {
  jail: string;
  user: TestUser;
  group: { name: string; gid: number };
}

/** A jail with /bin/sh and cat, a user in an extra group with a home holding a few files. */
async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const jail = await scratchDir("jujail");
  const groupName = `jkg${crypto.randomUUID().slice(0, 6)}`;
  await runCommand("groupadd", [groupName]);
  const user = await createUser({ groups: [groupName] });
  try {
    await copyWithLibs(jail, ["/bin/sh", "/usr/bin/cat"]);
    await Deno.mkdir(`${jail}/etc`, { mode: 0o755 });
    await Deno.writeTextFile(`${jail}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
    await Deno.writeTextFile(`${jail}/etc/group`, "root:x:0:\n");
    const asUser = (script: string) =>
      runCommand("/bin/sh", ["-c", script], { uid: user.uid, gid: user.gid, cwd: user.home });
    await asUser(
      "echo hello > notes.txt; mkdir -p sub/deeper; echo x > sub/deeper/x; " +
        "ln -s /etc/shadow link; chmod 750 .",
    );
    const gid = Number((await runCommand("getent", ["group", groupName])).stdout.split(":")[2]);
    await fn({ jail, user, group: { name: groupName, gid } });
  } finally {
    await user.remove();
    await runCommand("groupdel", [groupName]);
    await Deno.remove(jail, { recursive: true });
  }
}

/** The host passwd entry of a user, as NSS reports it now. */
async function hostEntry(name: string): Promise<{ home: string; shell: string }> {
  const fields = (await runCommand("getent", ["passwd", name])).stdout.trim().split(":");
  return { home: fields[5], shell: fields[6] };
}

Deno.test("jk_jailuser: paths in and out of the jail, as jailkit computes them", () => {
  assert.equal(jailHomeFor("/home/alice", "/srv/jail"), "/home/alice");
  assert.equal(jailHomeFor("/srv/jail/home/alice/", "/srv/jail"), "/home/alice");
  assert.equal(jailHomeFor("/srv/jail/./home/alice", "/srv/jail"), "/home/alice");
  assert.equal(jailHomeFor("/srv/jail", "/srv/jail"), "/");
  assert.equal(jailHomeFor("/srv/jail2/home/a", "/srv/jail"), "/srv/jail2/home/a");
  assert.equal(newHostHome("/home/alice", "/srv/jail"), "/srv/jail/./home/alice");
  assert.equal(newHostHome("/srv/jail/./home/alice", "/srv/jail"), "/srv/jail/./home/alice");
  assert.equal(newHostHome("/srv/jail/", "/srv/jail"), "/srv/jail/./");
  const user = { name: "a", password: "x", uid: 5, gid: 5, gecos: "A", home: "/h", shell: "/s" };
  assert.equal(
    addUserLine("root:x:0:0::/:/bin/sh", user),
    "root:x:0:0::/:/bin/sh\na:x:5:5:A:/h:/s\n",
  );
  assert.equal(addUserLine("a:x:9:9::/x:/y\n", user), null, "an existing name is left alone");
  assert.throws(() => addUserLine("", { ...user, gecos: "a:b" }), /contains ':'/);
  assert.equal(addGroupMember("g:x:7:\n", { name: "g", gid: 7 }, "a"), "g:x:7:a\n");
  assert.equal(addGroupMember("g:x:7:b\n", { name: "g", gid: 7 }, "a"), "g:x:7:b,a\n");
  assert.equal(addGroupMember("g:x:7:a\n", { name: "g", gid: 7 }, "a"), null);
  assert.equal(addGroupMember("", { name: "g", gid: 7 }, null), "g:x:7:\n");
});

Deno.test("jk_jailuser -n -m: jail files, host account, home moved as the user, then a login", async () => {
  await withFixture(async ({ jail, user, group }) => {
    const oldHome = user.home;
    const r = await runTool("jk_jailuser", [
      "--noninteractive",
      "-m",
      "-v",
      "-s",
      "/bin/sh",
      "-j",
      jail,
      user.name,
    ]);
    assert.equal(r.code, 0, r.stderr + r.stdout);

    const passwd = await Deno.readTextFile(`${jail}/etc/passwd`);
    assert.ok(
      passwd.includes(`\n${user.name}:x:${user.uid}:${user.gid}::/home/${user.name}:/bin/sh\n`),
      passwd,
    );
    const groups = (await Deno.readTextFile(`${jail}/etc/group`)).split("\n");
    assert.ok(groups.includes(`${user.name}:x:${user.gid}:`), groups.join("\n"));
    assert.ok(groups.includes(`${group.name}:x:${group.gid}:${user.name}`), groups.join("\n"));

    const host = await hostEntry(user.name);
    assert.equal(host.home, `${jail}/./home/${user.name}`);
    assert.equal(host.shell, await toolPathUnderTest("jk_chrootsh"));

    const home = `${jail}/home/${user.name}`;
    const parent = await Deno.lstat(`${jail}/home`);
    assert.equal(parent.uid, 0);
    assert.equal(parent.mode! & 0o7777, 0o755);
    const moved = await Deno.lstat(home);
    assert.equal(moved.uid, user.uid);
    assert.equal(moved.mode! & 0o7777, 0o750, "the old home's mode");
    assert.equal(await Deno.readTextFile(`${home}/sub/deeper/x`), "x\n");
    assert.equal((await Deno.lstat(`${home}/notes.txt`)).uid, user.uid);
    assert.equal(await Deno.readLink(`${home}/link`), "/etc/shadow", "a symlink stays a symlink");
    await assert.rejects(Deno.lstat(oldHome), Deno.errors.NotFound);

    // The account works: jk_chrootsh puts the user into the jail at the new home.
    const login = await runCommand(host.shell, ["-c", "pwd; cat notes.txt"], user);
    assert.equal(login.stdout, `/home/${user.name}\nhello\n`, login.stderr);

    // A second run changes nothing.
    const again = await runTool("jk_jailuser", [
      "-n",
      "-m",
      "-s",
      "/bin/sh",
      "-j",
      jail,
      user.name,
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /is already inside the jail/);
    assert.equal(await Deno.readTextFile(`${jail}/etc/passwd`), passwd);
  });
});

Deno.test("jk_jailuser: the default in-jail shell is the installed jk_lsh, and must be in the jail", async () => {
  await withFixture(async ({ jail, user }) => {
    const lsh = `${await testPrefix()}/usr/sbin/jk_lsh`;
    const missing = await runTool("jk_jailuser", ["-n", "-j", jail, user.name]);
    assert.equal(missing.code, 33);
    assert.match(missing.stderr, new RegExp(`invalid shell, ${jail}${lsh} does not exist`));
    await Deno.mkdir(`${jail}${lsh.slice(0, lsh.lastIndexOf("/"))}`, { recursive: true });
    await Deno.writeTextFile(`${jail}${lsh}`, "#!/bin/sh\n", { mode: 0o644 });
    await Deno.chmod(`${jail}${lsh}`, 0o644);
    const notExecutable = await runTool("jk_jailuser", ["-n", "-j", jail, user.name]);
    assert.equal(notExecutable.code, 33);
    assert.match(notExecutable.stderr, /is not executable/);
    await Deno.chmod(`${jail}${lsh}`, 0o755);
    // Without -m the home stays where it is and a note says so.
    const r = await runTool("jk_jailuser", ["-n", "-j", jail, user.name]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`note: ${jail}${user.home} does not exist`));
    assert.ok((await Deno.readTextFile(`${jail}/etc/passwd`)).includes(`:${user.home}:${lsh}\n`));
    assert.equal((await hostEntry(user.name)).home, `${jail}/.${user.home}`);
    assert.ok((await Deno.stat(user.home)).isDirectory, "nothing moved");
  });
});

Deno.test("jk_jailuser refuses: no user, unknown users, invalid or unsafe jails, non-root, bad options", async () => {
  await withFixture(async ({ jail, user }) => {
    const none = await runTool("jk_jailuser", ["-n", "-j", jail]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /aborted, no username specified/);
    const unknown = await runTool("jk_jailuser", ["-n", "-s", "/bin/sh", "-j", jail, "nosuchuser"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /user nosuchuser does not exist/);
    const noPasswd = await runTool("jk_jailuser", [
      "-n",
      "-s",
      "/bin/sh",
      "-j",
      `${jail}/etc`,
      user.name,
    ]);
    assert.equal(noPasswd.code, 33);
    assert.match(noPasswd.stderr, /invalid jail, .*\/etc\/etc\/passwd does not exist/);
    await Deno.chmod(jail, 0o777);
    const unsafe = await runTool("jk_jailuser", ["-n", "-s", "/bin/sh", "-j", jail, user.name]);
    assert.equal(unsafe.code, 33);
    assert.match(unsafe.stderr, /is not a safe jail: .* is writable by others/);
    await Deno.chmod(jail, 0o755);
    const notRoot = await runTool("jk_jailuser", ["-n", "-j", jail, user.name], user);
    assert.equal(notRoot.code, 1);
    assert.match(notRoot.stderr, /must run as root/);
    const usage = await runTool("jk_jailuser", ["--bogus"]);
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /try --help/);
    assert.equal((await hostEntry(user.name)).home, user.home, "the account was never touched");
  });
});

Deno.test("jk_jailuser -m refuses a home with hardlinked files and leaves everything as it was", async () => {
  await withFixture(async ({ jail, user }) => {
    await runCommand("ln", [`${user.home}/notes.txt`, `${user.home}/sub/notes-again`], user);
    const r = await runTool("jk_jailuser", ["-n", "-m", "-s", "/bin/sh", "-j", jail, user.name]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /refusing to move .*: it holds hardlinked files/);
    assert.equal((await hostEntry(user.name)).home, user.home, "account unchanged");
    assert.equal(await Deno.readTextFile(`${user.home}/notes.txt`), "hello\n");
    await assert.rejects(Deno.lstat(`${jail}/home/${user.name}`), Deno.errors.NotFound);
  });
});

Deno.test("jk_jailuser -m copies as the user: what the user cannot read is not copied by root", async () => {
  await withFixture(async ({ jail, user }) => {
    // A file in the home the user cannot read (root's, 0600): jailkit's root copy took it along.
    await Deno.writeTextFile(`${user.home}/secret`, "root only\n", { mode: 0o600 });
    await Deno.chmod(`${user.home}/secret`, 0o600);
    const r = await runTool("jk_jailuser", ["-n", "-m", "-s", "/bin/sh", "-j", jail, user.name]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /Not everything was copied to .*, keeping the old directory/);
    assert.match(r.stderr, /secret.*Permission denied/);
    await assert.rejects(Deno.lstat(`${jail}/home/${user.name}/secret`), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(`${user.home}/secret`), "root only\n", "old home kept");
    assert.equal((await hostEntry(user.name)).home, user.home, "account unchanged");
  });
});

Deno.test("jk_jailuser interactive: asks for a jail, then whether to move (empty answer: yes)", async () => {
  await withFixture(async ({ jail, user }) => {
    const parent = jail.slice(0, jail.lastIndexOf("/"));
    const name = jail.slice(jail.lastIndexOf("/") + 1);
    const r = await runTool("jk_jailuser", ["-s", "/bin/sh", "-j", "/nonexistent", user.name], {
      stdin: `${name}\n\n`,
      cwd: parent, // a relative answer is taken from the working directory
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\/nonexistent does not exist/);
    assert.match(r.stdout, /enter jail directory: /);
    assert.match(r.stdout, new RegExp(`home directory ${user.home} is not within ${jail}`));
    assert.equal(await Deno.readTextFile(`${jail}/home/${user.name}/notes.txt`), "hello\n");
    // End of input at the jail prompt: give up with 33, as jailkit does without a jail.
    const eof = await runTool("jk_jailuser", ["-j", "/nonexistent", user.name], { stdin: "" });
    assert.equal(eof.code, 33);
  });
});
