/** The installer, the build commands and the one table that drives both. */
import assert from "node:assert/strict";
import { compileCommands } from "../build.ts";
import { devEntry, install, sitePaths } from "../src/install.ts";
import { libDir, type Site } from "../src/site.ts";
import { runArgs, TOOLS } from "../src/tools.ts";
import { runCommand, scratchDir } from "./harness.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("build --print prints exactly one deno compile per row of the table", async () => {
  const r = await runCommand(Deno.execPath(), [
    "run",
    "--no-config",
    "-A",
    `${ROOT}build.ts`,
    "--print",
    "--out",
    "/opt/out",
    "--prefix",
    "/opt/x",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const site: Site = { prefix: "/opt/x", sysconfdir: "/opt/x/etc/jailkit" };
  const expected = compileCommands(site, "/opt/out/.stage", "/opt/out")
    .map((c) => ["deno", ...c.args].join(" "));
  assert.deepEqual(r.stdout.trim().split("\n"), expected);
  assert.equal(expected.length, TOOLS.length);
  for (const [i, tool] of TOOLS.entries()) {
    const line = expected[i];
    assert.ok(line.includes(" --no-prompt "), `${tool.name}: --no-prompt`);
    assert.ok(line.includes(" --no-code-cache "), `${tool.name}: --no-code-cache`);
    assert.ok(line.endsWith(`/opt/out/.stage/${tool.entry}`));
  }
});

Deno.test("build: without a denort runtime it stops with one message saying how to supply it", async () => {
  const out = await scratchDir("build-out");
  try {
    const r = await runCommand(Deno.execPath(), [
      "run",
      "--no-config",
      "-A",
      `${ROOT}build.ts`,
      "--out",
      out,
    ], { env: { PATH: "/usr/bin:/bin", DENORT_BIN: "/nonexistent/denort", NO_COLOR: "1" } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^build: deno compile could not get its denort runtime .*DENORT_BIN/m);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.deepEqual([...Deno.readDirSync(out)], [], "nothing half-built is left");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("every permission path in the table is absolute", async () => {
  const site: Site = { prefix: "/opt/x", sysconfdir: "/opt/x/etc/jailkit" };
  for (const tool of TOOLS) {
    for (const flag of tool.permissions(site)) {
      const m = flag.match(/^--(allow|deny)-(read|write|run|ffi|net|env|sys)=(.*)$/);
      if (!m || m[2] === "env" || m[2] === "sys") continue;
      for (const item of m[3].split(",")) {
        const path = m[2] === "net" ? item.replace(/^unix:/, "") : item;
        if (m[2] === "net" && !item.startsWith("unix:")) continue;
        assert.ok(path.startsWith("/"), `${tool.name}: ${flag} has a relative entry ${item}`);
      }
    }
    assert.ok(tool.why.length > 20, `${tool.name} says why it has its permissions`);
    await Deno.stat(`${ROOT}${tool.entry}`);
  }
});

Deno.test("install --dev: launchers run, paths follow prefix and sysconfdir, configs kept", async () => {
  const prefix = await scratchDir("install");
  const site: Site = { prefix, sysconfdir: `${prefix}/etc/jailkit` };
  try {
    // An admin's edited ini must survive a reinstall; the new one becomes .dist.
    await Deno.mkdir(site.sysconfdir, { recursive: true });
    await Deno.writeTextFile(`${site.sysconfdir}/jk_init.ini`, "# mine\n");
    const lines: string[] = [];
    await install({ site, dev: true, caps: false, log: (l) => lines.push(l) });
    assert.equal(await Deno.readTextFile(`${site.sysconfdir}/jk_init.ini`), "# mine\n");
    for await (const e of Deno.readDir(`${ROOT}config`)) {
      if (!e.name.endsWith(".ini")) continue;
      const installed = e.name === "jk_init.ini" ? `${e.name}.dist` : e.name;
      const text = await Deno.readTextFile(`${site.sysconfdir}/${installed}`);
      assert.ok(!/(^|[\s,=])\/etc\/jailkit/m.test(text), `${installed} still names /etc/jailkit`);
    }
    const unit = await Deno.readTextFile(`${prefix}/etc/systemd/system/jk_socketd.service`);
    assert.match(unit, new RegExp(`ExecStart=${prefix}/usr/sbin/jk_socketd`));
    // The installed site.ts names this prefix, so the tools use its files.
    const siteTs = await Deno.readTextFile(`${libDir(site)}/src/site.ts`);
    assert.match(siteTs, new RegExp(`prefix: "${prefix}"`));
    for (const tool of TOOLS) {
      const entry = `${prefix}/${tool.dir}/${tool.name}`;
      const info = await Deno.stat(entry);
      assert.equal(info.uid, 0);
      assert.equal(info.mode! & 0o7777, tool.privileged ? 0o4755 : 0o755, entry);
      // The launcher bakes exactly the table's run arguments.
      const strings = new TextDecoder().decode(await Deno.readFile(entry));
      // Every tool without a reason not to runs its one-file bundle, made beside its entry.
      const bundled = tool.unbundled === undefined;
      if (bundled) assert.ok((await Deno.stat(devEntry(tool, libDir(site), true))).isFile);
      for (const arg of runArgs(tool, site, devEntry(tool, libDir(site), bundled))) {
        assert.ok(strings.includes(`${arg}\0`), `${tool.name} launcher lacks ${arg}`);
      }
    }
    const list = await runCommand(`${prefix}/usr/sbin/jk_list`, ["--help"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /jk_list/);
  } finally {
    await Deno.remove(prefix, { recursive: true });
  }
});

Deno.test("install: a relative or odd prefix is refused before anything is written", async () => {
  for (const prefix of ["relative", "/opt/a b", "/opt/../x"]) {
    await assert.rejects(
      install({
        site: { prefix, sysconfdir: "/etc/jailkit" },
        dev: true,
        caps: false,
        log: () => {},
      }),
      /prefix must be empty or an absolute path/,
    );
  }
});

Deno.test("sitePaths rewrites default paths and nothing else", () => {
  const site: Site = { prefix: "/opt/x", sysconfdir: "/opt/x/etc/jk" };
  assert.equal(
    sitePaths(
      "paths = /usr/sbin/jk_lsh, /etc/jailkit/jk_lsh.ini, /usr/lib/jailkit\n" +
        "other = /usr/sbin/sshd, /etc/jailkitx, /usr/lib/jailkit2\n",
      site,
    ),
    "paths = /opt/x/usr/sbin/jk_lsh, /opt/x/etc/jk/jk_lsh.ini, /opt/x/usr/lib/jailkit\n" +
      "other = /usr/sbin/sshd, /etc/jailkitx, /usr/lib/jailkit2\n",
  );
});
