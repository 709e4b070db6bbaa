/**
 * jk_uchroot through its installed setuid-root trampoline, called by real
 * users: a listed user runs programs in a real jail as themselves; anyone else
 * learns nothing about the files they asked for.
 */
import assert from "node:assert/strict";
import { allowedJail, passedEnvironment } from "../shells/jk_uchroot.ts";
import {
  copyWithLibs,
  createUser,
  runTool,
  scratchDir,
  testSite,
  type TestUser,
} from "./harness.ts";

interface World {
  jail: string;
  /** A root-only directory holding `secret` (mode 0700). */
  hidden: string;
  allowed: TestUser;
  other: TestUser;
  /** Replaces jk_uchroot.ini. */
  config(text: string): Promise<void>;
  /** Runs jk_uchroot as `user`. */
  as(user: TestUser, args: string[], env?: Record<string, string>): ReturnType<typeof runTool>;
}

async function withWorld(fn: (w: World) => Promise<void>): Promise<void> {
  const site = await testSite();
  const iniFile = `${site.sysconfdir}/jk_uchroot.ini`;
  const original = await Deno.readTextFile(iniFile);
  const dir = await scratchDir("uchroot");
  const allowed = await createUser();
  const other = await createUser();
  try {
    const jail = `${dir}/jail`;
    await Deno.mkdir(`${jail}/etc`, { recursive: true });
    await copyWithLibs(jail, ["/usr/bin/id", "/usr/bin/env", "/usr/bin/pwd", "/usr/bin/cat"]);
    await Deno.copyFile(`${jail}/usr/bin/id`, `${jail}/usr/bin/id-suid`);
    await Deno.chmod(`${jail}/usr/bin/id-suid`, 0o4755);
    await Deno.writeTextFile(
      `${jail}/etc/passwd`,
      `root:x:0:0:root:/root:/bin/sh\n${allowed.name}:x:${allowed.uid}:${allowed.gid}::/home:/bin/sh\n`,
    );
    await Deno.writeTextFile(`${jail}/etc/group`, `root:x:0:\n${allowed.name}:x:${allowed.gid}:\n`);
    const hidden = `${dir}/hidden`;
    await Deno.mkdir(hidden, { mode: 0o700 });
    await Deno.writeTextFile(`${hidden}/secret`, "x");
    await Deno.writeTextFile(iniFile, `[${allowed.name}]\nallowed_jails = ${jail}\n`);
    await fn({
      jail,
      hidden,
      allowed,
      other,
      config: (text) => Deno.writeTextFile(iniFile, text),
      as: (user, args, env = { PATH: "/usr/bin:/bin" }) =>
        runTool("jk_uchroot", args, { uid: user.uid, gid: user.gid, env }),
    });
  } finally {
    await Deno.writeTextFile(iniFile, original);
    await allowed.remove();
    await other.remove();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("pure parts: allowed jails compared as jailkit does, environment filtered", () => {
  assert.equal(allowedJail(["/srv/a", "/srv/b/"], "/srv/b"), "/srv/b");
  assert.equal(allowedJail(["/srv/a"], "/srv/a/"), "/srv/a");
  assert.equal(allowedJail(["/srv/a"], "/srv/a/../a"), undefined);
  assert.equal(allowedJail(["/srv/a"], "/srv"), undefined);
  assert.deepEqual(
    passedEnvironment(
      new Map([["TERM", "xterm"], ["LD_PRELOAD", "/x"], ["LD_FOO", "1"], ["TMPDIR", "/t"]]),
    ),
    ["TERM=xterm"],
  );
});

Deno.test("a listed user runs a program in the jail as themselves, without new privileges", async () => {
  await withWorld(async (w) => {
    const { name, uid, gid } = w.allowed;
    const id = await w.as(w.allowed, ["-j", w.jail, "-x", "/usr/bin/id"]);
    assert.equal(id.code, 0, id.stderr);
    assert.equal(
      id.stdout.trim(),
      `uid=${uid}(${name}) gid=${gid}(${name}) groups=${gid}(${name})`,
    );
    // A setuid-root program in the jail gives nothing: no_new_privs.
    const suid = await w.as(w.allowed, ["--jail", `${w.jail}/`, "--exec", "usr/bin/id-suid"]);
    assert.equal(suid.code, 0, suid.stderr);
    assert.doesNotMatch(suid.stdout, /euid=0/);
    assert.match(suid.stdout, new RegExp(`^uid=${uid}\\(`));
    // The jail's files, not the host's.
    const cat = await w.as(w.allowed, ["-j", w.jail, "-x", "/usr/bin/cat", "--", "/etc/passwd"]);
    assert.equal(cat.stdout, await Deno.readTextFile(`${w.jail}/etc/passwd`));
    // Arguments, working directory, environment.
    assert.equal(
      (await w.as(w.allowed, ["-j", w.jail, "-x", "/usr/bin/id", "--", "-u"])).stdout,
      `${uid}\n`,
    );
    assert.equal((await w.as(w.allowed, ["-j", w.jail, "-x", "/usr/bin/pwd"])).stdout, "/\n");
    const env = await w.as(w.allowed, ["-j", w.jail, "-x", "/usr/bin/env"], {
      PATH: "/usr/bin:/bin",
      HOME: "/home/somewhere",
      FOO: "bar",
      LD_FOO: "1",
      GCONV_PATH: "/tmp/x",
    });
    assert.equal(env.code, 0, env.stderr);
    const vars = env.stdout.trim().split("\n").sort();
    assert.deepEqual(vars, ["FOO=bar", "HOME=/home/somewhere", "PATH=/usr/bin:/bin"]);
  });
});

Deno.test("no file-existence oracle: a caller not allowed learns nothing about the target", async () => {
  await withWorld(async (w) => {
    const same = async (user: TestUser, jail: string, existing: string, missing: string) => {
      const a = await w.as(user, ["-j", jail, "-x", existing]);
      const b = await w.as(user, ["-j", jail, "-x", missing]);
      assert.deepEqual(
        { code: a.code, stdout: a.stdout, stderr: a.stderr },
        { code: b.code, stdout: b.stdout, stderr: b.stderr },
        `${existing} vs ${missing}`,
      );
      return a;
    };
    // Listed, but not for this jail.
    const a = await same(w.allowed, w.hidden, "secret", "no-such-file");
    assert.equal(a.code, 21);
    assert.match(a.stderr, /is not allowed in jail/);
    const b = await same(
      w.allowed,
      "/",
      `${w.hidden.slice(1)}/secret`,
      `${w.hidden.slice(1)}/nope`,
    );
    assert.equal(b.code, 21);
    // Not listed at all.
    const c = await same(w.other, w.hidden, "secret", "no-such-file");
    assert.equal(c.code, 1);
    assert.match(c.stderr, /no relevant section for user/);
    // Listed for the jail: only now, as the user inside it, is the path looked at.
    const missing = await w.as(w.allowed, ["-j", w.jail, "-x", "/usr/bin/nope"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /Executable path \/usr\/bin\/nope does not exist/);
  });
});

Deno.test("sections, safety and in-jail identity checks", async () => {
  await withWorld(async (w) => {
    const run = (user = w.allowed) => w.as(user, ["-j", w.jail, "-x", "/usr/bin/id", "--", "-u"]);
    // [group NAME] of the primary group; DEFAULT as the fallback.
    await w.config(`[group ${w.allowed.name}]\nallowed_jails = /elsewhere, ${w.jail}\n`);
    assert.equal((await run()).code, 0);
    await w.config(`[DEFAULT]\nallowed_jails = ${w.jail}\n`);
    const other = await run(w.other);
    assert.equal(other.code, 35, other.stderr); // allowed, but not in the jail's passwd
    await w.config(`[DEFAULT]\nallowed_jails = ${w.jail}\nskip_injail_passwd_check = 1\n`);
    assert.equal((await run(w.other)).stdout, `${w.other.uid}\n`);
    // A name that differs in the jail.
    await w.config(`[${w.allowed.name}]\nallowed_jails = ${w.jail}\n`);
    const passwd = await Deno.readTextFile(`${w.jail}/etc/passwd`);
    await Deno.writeTextFile(
      `${w.jail}/etc/passwd`,
      passwd.replace(`${w.allowed.name}:`, "someone:"),
    );
    const names = await run();
    assert.equal(names.code, 37, names.stderr);
    await Deno.writeTextFile(`${w.jail}/etc/passwd`, passwd);
    // An unsafe jail is refused even for a listed user.
    await Deno.chmod(`${w.jail}/etc`, 0o775);
    const unsafe = await run();
    assert.equal(unsafe.code, 53);
    assert.match(unsafe.stderr, /is not a safe jail/);
    await Deno.chmod(`${w.jail}/etc`, 0o755);
    // Broken or missing configuration.
    await w.config(`[${w.allowed.name}\nallowed_jails = ${w.jail}\n`);
    assert.equal((await run()).code, 14);
    await w.config(`[${w.allowed.name}]\nskip_injail_passwd_check = 1\n`);
    assert.match((await run()).stderr, /no relevant section/);
    const site = await testSite();
    await Deno.remove(`${site.sysconfdir}/jk_uchroot.ini`);
    const none = await run();
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no config file/);
    await w.config(`[${w.allowed.name}]\nallowed_jails = ${w.jail}\n`);
    // Usage.
    const noJail = await w.as(w.allowed, ["-x", "/usr/bin/id"]);
    assert.equal(noJail.code, 1);
    assert.match(noJail.stdout, /ERROR: No jail path specified/);
    assert.match((await w.as(w.allowed, ["-j", w.jail])).stdout, /No executable path specified/);
    assert.equal((await w.as(w.allowed, ["-h"])).code, 1);
    // Root gains nothing from it.
    const root = await runTool("jk_uchroot", ["-j", w.jail, "-x", "/usr/bin/id"]);
    assert.equal(root.code, 12, root.stderr);
  });
});
