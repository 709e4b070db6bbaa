/**
 * jk_procmailwrapper through its installed setuid-root trampoline, run as the
 * recipient the way an MTA runs its delivery command, with Debian's real
 * procmail (package `procmail`) on the host and copied into a real jail.
 */
import assert from "node:assert/strict";
import { deliveryEnvironment, PROCMAIL } from "../shells/jk_procmailwrapper.ts";
import { splitJailHome } from "../src/privtool.ts";
import {
  copyWithLibs,
  createUser,
  runCommand,
  runTool,
  scratchDir,
  type TestUser,
} from "./harness.ts";

const MAIL = "From sender@example.org Sat Nov 29 09:00:00 2026\nSubject: hi\n\nhello body\n";

/** Records procmail's environment and `id`, then delivers to $HOME/inbox. */
const PROCMAILRC = `DEFAULT=$HOME/inbox
:0c
| /usr/bin/env > $HOME/env.txt
:0c
| /usr/bin/id > $HOME/id.txt
`;

/** Delivers MAIL as `user`, as an MTA would: the MTA's variables plus junk. */
function deliver(user: TestUser, args: string[] = ["-p"], gid = user.gid) {
  return runTool("jk_procmailwrapper", args, {
    uid: user.uid,
    gid,
    stdin: MAIL,
    env: {
      PATH: "/usr/bin:/bin",
      SENDER: "sender@example.org",
      RECIPIENT: `${user.name}@example.org`,
      FOO: "bar",
      HOME: "/tmp/elsewhere",
      LD_FOO: "1",
    },
  });
}

async function writeOwned(path: string, text: string, user: TestUser): Promise<void> {
  await Deno.writeTextFile(path, text);
  await Deno.chown(path, user.uid, user.gid);
  await Deno.chmod(path, 0o644);
}

/** procmail ran with exactly PATH, HOME, USER, LOGNAME, SHELL and the MTA's two variables. */
function assertCleanEnvironment(envText: string, home: string, user: TestUser): void {
  const env = new Map(
    envText.trim().split("\n").map((l) => {
      const at = l.indexOf("=");
      return [l.slice(0, at), l.slice(at + 1)] as const;
    }),
  );
  assert.equal(env.get("HOME"), home);
  assert.equal(env.get("USER"), user.name);
  assert.equal(env.get("LOGNAME"), user.name);
  assert.equal(env.get("SENDER"), "sender@example.org");
  assert.equal(env.get("RECIPIENT"), `${user.name}@example.org`);
  assert.equal(env.get("FOO"), undefined);
  assert.equal(env.get("LD_FOO"), undefined);
}

Deno.test("pure parts", () => {
  assert.equal(PROCMAIL, "/usr/bin/procmail");
  assert.deepEqual(splitJailHome("/srv/j/./home/a"), { jail: "/srv/j", home: "/home/a" });
  assert.equal(splitJailHome("/home/a"), null);
  assert.deepEqual(
    deliveryEnvironment(new Map([["SENDER", "a\nb"], ["EXTENSION", "x"], ["FOO", "y"]]), {
      home: "/h",
      user: "u",
      shell: "/bin/sh",
    }),
    ["PATH=/usr/bin:/bin", "HOME=/h", "USER=u", "LOGNAME=u", "SHELL=/bin/sh", "EXTENSION=x"],
  );
});

Deno.test("a user without a jail gets the host's procmail as themselves", async () => {
  const user = await createUser();
  try {
    await writeOwned(`${user.home}/.procmailrc`, PROCMAILRC, user);
    const r = await deliver(user);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${user.home}/inbox`), MAIL + "\n");
    assert.equal((await Deno.stat(`${user.home}/inbox`)).uid, user.uid);
    assert.match(await Deno.readTextFile(`${user.home}/id.txt`), new RegExp(`^uid=${user.uid}\\(`));
    assertCleanEnvironment(await Deno.readTextFile(`${user.home}/env.txt`), user.home, user);
  } finally {
    await user.remove();
  }
});

/** A jail with procmail, sh, env and id; `user`'s home is JAIL/./home/NAME. */
async function withJailedUser(
  fn: (ctx: { jail: string; user: TestUser; home: string }) => Promise<void>,
): Promise<void> {
  const dir = await scratchDir("procmail");
  const jail = `${dir}/jail`;
  const user = await createUser({ home: `${jail}/./home/jkpm` });
  try {
    await copyWithLibs(jail, [PROCMAIL, "/bin/sh", "/usr/bin/env", "/usr/bin/id"]);
    const home = `/home/jkpm`;
    await Deno.mkdir(`${jail}/home`, { recursive: true }).catch(() => {});
    await Deno.chmod(`${jail}/home`, 0o755);
    await Deno.mkdir(`${jail}/etc`, { recursive: true });
    await Deno.mkdir(`${jail}/dev`); // procmail writes to /dev/null
    await runCommand("mknod", ["-m", "666", `${jail}/dev/null`, "c", "1", "3"]);
    await Deno.writeTextFile(
      `${jail}/etc/passwd`,
      `root:x:0:0:root:/root:/bin/sh\n${user.name}:x:${user.uid}:${user.gid}::${home}:/bin/sh\n`,
    );
    await Deno.writeTextFile(`${jail}/etc/group`, `root:x:0:\n${user.name}:x:${user.gid}:\n`);
    await writeOwned(`${jail}${home}/.procmailrc`, PROCMAILRC, user);
    await fn({ jail, user, home });
  } finally {
    await user.remove();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a jailed user gets procmail inside the jail, with the jailed .procmailrc", async () => {
  await withJailedUser(async ({ jail, user, home }) => {
    const r = await deliver(user);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${jail}${home}/inbox`), MAIL + "\n");
    // Ran as the user, with only their own group (id reads the jail's files).
    assert.equal(
      (await Deno.readTextFile(`${jail}${home}/id.txt`)).trim(),
      `uid=${user.uid}(${user.name}) gid=${user.gid}(${user.name}) groups=${user.gid}(${user.name})`,
    );
    // HOME is the home inside the jail.
    assertCleanEnvironment(await Deno.readTextFile(`${jail}${home}/env.txt`), home, user);
  });
});

Deno.test("jailed delivery refuses unsafe jails, foreign homes and mismatched identities", async () => {
  await withJailedUser(async ({ jail, user, home }) => {
    // The jail's procmail must be root's and writable only by root.
    await Deno.chmod(`${jail}${PROCMAIL}`, 0o777);
    assert.equal((await deliver(user)).code, 40);
    await Deno.chmod(`${jail}${PROCMAIL}`, 0o755);
    // An unsafe jail.
    await Deno.chmod(`${jail}/etc`, 0o777);
    const unsafe = await deliver(user);
    assert.equal(unsafe.code, 53, unsafe.stderr);
    await Deno.chmod(`${jail}/etc`, 0o755);
    // A home that is not the user's.
    await Deno.chown(`${jail}${home}`, 0, 0);
    assert.match((await deliver(user)).stderr, /is not owned by/);
    await Deno.chown(`${jail}${home}`, user.uid, user.gid);
    // The jail's passwd puts the user elsewhere.
    const passwd = await Deno.readTextFile(`${jail}/etc/passwd`);
    await Deno.writeTextFile(`${jail}/etc/passwd`, passwd.replace(`::${home}:`, "::/srv:"));
    assert.equal((await deliver(user)).code, 39);
    await Deno.writeTextFile(`${jail}/etc/passwd`, passwd.replace(`${user.name}:x`, "other:x"));
    assert.equal((await deliver(user)).code, 37);
    await Deno.writeTextFile(`${jail}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
    assert.equal((await deliver(user)).code, 35);
    await Deno.writeTextFile(`${jail}/etc/passwd`, passwd);
    // Started with a gid that is not the user's.
    assert.equal((await deliver(user, ["-p"], 0)).code, 15);
    // Nothing was delivered by any of these.
    await assert.rejects(Deno.lstat(`${jail}${home}/inbox`), Deno.errors.NotFound);
    // Root is refused (jailkit: 11).
    const root = await runTool("jk_procmailwrapper", [], { stdin: MAIL });
    assert.equal(root.code, 11, root.stderr);
  });
});
