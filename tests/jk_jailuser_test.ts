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
    // userdel -r removes the home the account names by then; the original may be left.
    await Deno.remove(user.home, { recursive: true }).catch(() => {});
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
  const bytes = (text: string) => new TextEncoder().encode(text);
  const text = (out: Uint8Array | null) => out === null ? null : new TextDecoder().decode(out);
  assert.equal(
    text(addUserLine(bytes("root:x:0:0::/:/bin/sh"), user)),
    "root:x:0:0::/:/bin/sh\na:x:5:5:A:/h:/s\n",
  );
  assert.equal(
    addUserLine(bytes("a:x:9:9::/x:/y\n"), user),
    null,
    "an existing name is left alone",
  );
  assert.throws(() => addUserLine(bytes(""), { ...user, gecos: "a:b" }), /contains ':'/);
  assert.equal(text(addGroupMember(bytes("g:x:7:\n"), { name: "g", gid: 7 }, "a")), "g:x:7:a\n");
  assert.equal(text(addGroupMember(bytes("g:x:7:b\n"), { name: "g", gid: 7 }, "a")), "g:x:7:b,a\n");
  assert.equal(addGroupMember(bytes("g:x:7:a\n"), { name: "g", gid: 7 }, "a"), null);
  assert.equal(text(addGroupMember(bytes(""), { name: "g", gid: 7 }, null)), "g:x:7:\n");
  // Another line in Latin-1 (not UTF-8) keeps its bytes; a CRLF line keeps its CR.
  const latin1 = new Uint8Array([
    ...bytes("r:x:0:0:"),
    0xe9,
    ...bytes(":/:/s\ng:x:7:b\r\nh:x:8:\n"),
  ]);
  assert.deepEqual(
    addUserLine(latin1, user),
    new Uint8Array([...latin1, ...bytes("a:x:5:5:A:/h:/s\n")]),
  );
  assert.deepEqual(
    addGroupMember(latin1, { name: "g", gid: 7 }, "a"),
    new Uint8Array([...bytes("r:x:0:0:"), 0xe9, ...bytes(":/:/s\ng:x:7:b,a\r\nh:x:8:\n")]),
  );
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
    assert.match(r.stdout, /removed the copy /);
    await assert.rejects(Deno.lstat(`${jail}/home`), Deno.errors.NotFound, "no partial copy");
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

/** A digest of a tree: every path with its type, owner, mode, size, content or link target. */
async function treeDigest(dir: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (path: string, rel: string) => {
    const info = await Deno.lstat(path);
    let body = "";
    if (info.isFile) {
      const hash = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
      body = [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
    } else if (info.isSymlink) body = await Deno.readLink(path);
    lines.push(`${rel} ${info.uid}:${info.gid} ${info.mode?.toString(8)} ${info.size} ${body}`);
    if (info.isDirectory) {
      const names = [];
      for await (const e of Deno.readDir(path)) names.push(e.name);
      for (const name of names.sort()) await walk(`${path}/${name}`, `${rel}/${name}`);
    }
  };
  await walk(dir, ".");
  return lines.join("\n");
}

/**
 * The user's line of the host /etc/passwd (the whole file changes under tests
 * run alongside that add and remove their own users).
 */
async function passwdLineOf(name: string): Promise<string> {
  const lines = (await Deno.readTextFile("/etc/passwd")).split("\n");
  const found = lines.filter((l) => l.startsWith(`${name}:`));
  assert.equal(found.length, 1, `one passwd line for ${name}`);
  return found[0];
}

/** Starts `sleep 60` under setpriv with the given ids; returns a stopper. */
function startSleeper(ids: string[]): { pid: number; stop: () => Promise<void> } {
  const child = new Deno.Command("/usr/bin/setpriv", {
    args: [...ids, "--clear-groups", "/usr/bin/sleep", "60"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let stopped = false;
  return {
    pid: child.pid,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      child.kill("SIGKILL");
      await child.status;
    },
  };
}

/** Waits until the process has dropped to `uid` (setpriv has exec'd sleep). */
async function waitForRealUid(pid: number, uid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
    if (new RegExp(`^Uid:\\t${uid}\\t`, "m").test(status)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} never ran as ${uid}`);
}

Deno.test("jk_jailuser -m refuses a user with running processes before changing anything", async () => {
  await withFixture(async ({ jail, user }) => {
    const home = await treeDigest(user.home);
    const account = await passwdLineOf(user.name);
    const jailPasswd = await Deno.readTextFile(`${jail}/etc/passwd`);
    const sleeper = startSleeper(["--reuid", String(user.uid), "--regid", String(user.gid)]);
    try {
      await waitForRealUid(sleeper.pid, user.uid);
      const args = ["-n", "-m", "-s", "/bin/sh", "-j", jail, user.name];
      const r = await runTool("jk_jailuser", args);
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.equal(
        r.stderr,
        `jk_jailuser: user ${user.name} has running processes (pid ${sleeper.pid}); ` +
          `stop them and run again, nothing was changed\n`,
      );
      assert.equal(await treeDigest(user.home), home, "the home is untouched");
      assert.equal(await passwdLineOf(user.name), account, "the host account is untouched");
      assert.equal(await Deno.readTextFile(`${jail}/etc/passwd`), jailPasswd, "so is the jail's");
      await assert.rejects(Deno.lstat(`${jail}/home`), Deno.errors.NotFound, "nothing copied");

      await sleeper.stop();
      const again = await runTool("jk_jailuser", args);
      assert.equal(again.code, 0, again.stderr + again.stdout);
      assert.equal((await hostEntry(user.name)).home, `${jail}/./home/${user.name}`);
      assert.equal(await Deno.readTextFile(`${jail}/home/${user.name}/notes.txt`), "hello\n");
      await assert.rejects(Deno.lstat(user.home), Deno.errors.NotFound, "the old home is gone");
    } finally {
      await sleeper.stop();
    }
  });
});

Deno.test("jk_jailuser -m: when usermod fails after the copy, the copy goes and the home stays", async () => {
  await withFixture(async ({ jail, user }) => {
    // Real uid the user's, effective uid root: /proc shows it as root's, so only
    // usermod (which checks real uids) sees the user busy, after the copy.
    // A read-only directory in the home: the copy of it must still be removable.
    await runCommand("/bin/sh", ["-c", "mkdir -p ro/in && echo r > ro/in/f && chmod 500 ro"], {
      ...user,
      cwd: user.home,
    });
    const home = await treeDigest(user.home);
    const account = await passwdLineOf(user.name);
    const sleeper = startSleeper(["--ruid", String(user.uid), "--euid", "0"]);
    try {
      await waitForRealUid(sleeper.pid, user.uid);
      const r = await runTool("jk_jailuser", ["-n", "-m", "-s", "/bin/sh", "-j", jail, user.name]);
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.match(r.stderr, new RegExp(`failed to modify user ${user.name}: .*currently used`));
      assert.match(r.stdout, new RegExp(`removed the copy ${jail}/home/${user.name}; `));
      assert.equal(await treeDigest(user.home), home, "the home is untouched");
      assert.equal(await passwdLineOf(user.name), account, "the host account is untouched");
      await assert.rejects(Deno.lstat(`${jail}/home`), Deno.errors.NotFound, "no partial copy");
    } finally {
      await sleeper.stop();
      await Deno.chmod(`${user.home}/ro`, 0o700).catch(() => {});
    }
  });
});

Deno.test("jk_jailuser -m: a home entry that cannot be read is named in the refusal", async () => {
  await withFixture(async ({ jail, user }) => {
    // Nested 200-byte names: past PATH_MAX (4096) the scan's lstat fails with
    // ENAMETOOLONG at a known depth, as deterministic as a vanishing entry is not.
    const name = "d".repeat(200);
    await runCommand(
      "/bin/sh",
      ["-c", `for i in $(seq 22); do mkdir ${name} && cd ${name}; done`],
      {
        ...user,
        cwd: user.home,
      },
    );
    try {
      const r = await runTool("jk_jailuser", ["-n", "-m", "-s", "/bin/sh", "-j", jail, user.name]);
      assert.equal(r.code, 1, r.stderr + r.stdout);
      const failed = r.stderr.match(/cannot read (\S+): File name too long, nothing moved\n$/);
      assert.ok(failed, r.stderr);
      assert.ok(failed[1].startsWith(`${user.home}/${name}/`), "the path that failed, in the home");
      assert.ok(failed[1].length >= 4096, "the entry past PATH_MAX");
      assert.doesNotMatch(r.stderr, /cannot prepare/);
      assert.equal((await hostEntry(user.name)).home, user.home, "account unchanged");
      await assert.rejects(Deno.lstat(`${jail}/home`), Deno.errors.NotFound);
    } finally {
      // userdel -r walks by path and stops at PATH_MAX; Deno removes by directory handle.
      await Deno.remove(`${user.home}/${name}`, { recursive: true }).catch(() => {});
    }
  });
});
