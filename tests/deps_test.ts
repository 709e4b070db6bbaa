/**
 * The library-closure engine against the real glibc loader.
 *
 * Every comparison runs the system loader in trace mode on the file
 * (`LD_TRACE_LOADED_OBJECTS=1 /lib64/ld-linux-x86-64.so.2 FILE`, the same
 * listing as `--list`, which in glibc 2.36 stops at the first missing library
 * instead of printing "not found") in an otherwise empty environment, so
 * LD_LIBRARY_PATH cannot interfere, and requires the same set of realpaths and
 * the same "not found" names. Only the tests run the loader; the product never
 * does.
 */
import assert from "node:assert/strict";
import { type Closure, DepResolver } from "../src/deps.ts";
import { parseElf } from "../src/elf.ts";
import { scratchDir } from "./harness.ts";

const LOADER = "/lib64/ld-linux-x86-64.so.2";

interface LoaderView {
  /** Realpaths of every object the loader lists (not the file itself). */
  paths: Set<string>;
  /** Names the loader could not find. */
  missing: Set<string>;
  /** Loader exit status (127 when it refuses to load at all). */
  code: number;
}

/** What the real loader lists for `file`. */
async function loaderList(file: string): Promise<LoaderView> {
  const out = await new Deno.Command(LOADER, {
    args: [file],
    clearEnv: true,
    env: { LD_TRACE_LOADED_OBJECTS: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const err = new TextDecoder().decode(out.stderr);
  const paths = new Set<string>();
  const missing = new Set<string>();
  for (const line of text.split("\n").map((l) => l.trim())) {
    let m = line.match(/^(\S+) => not found$/);
    if (m) {
      missing.add(m[1]);
      continue;
    }
    m = line.match(/^\S+ => (\/\S+) \(0x[0-9a-f]+\)$/) ?? line.match(/^(\/\S+) \(0x[0-9a-f]+\)$/);
    if (m) paths.add(Deno.realPathSync(m[1]));
  }
  const fatal = err.match(/error while loading shared libraries: ([^:]+): cannot open/);
  if (fatal) missing.add(fatal[1]);
  // The listing leaves the loader out when nothing names it (all of libc missing),
  // but the kernel maps PT_INTERP regardless.
  const interp = parseElf(Deno.readFileSync(file), file).interpreter;
  if (interp !== null && out.code === 0) paths.add(Deno.realPathSync(interp));
  return { paths, missing, code: out.code };
}

/** Our closure of one file, in the loader's terms. */
function ours(resolver: DepResolver, file: string): { paths: Set<string>; missing: Set<string> } {
  const c = resolver.closure([file]);
  return {
    paths: new Set(c.dependencies.map((d) => Deno.realPathSync(d.path))),
    missing: new Set(c.unresolved.map((u) => u.name)),
  };
}

function sorted(s: Set<string>): string[] {
  return [...s].sort();
}

function isDynamicElf(path: string): boolean {
  try {
    const st = Deno.lstatSync(path);
    if (!st.isFile || st.size < 64) return false;
    const f = Deno.openSync(path);
    const head = new Uint8Array(4);
    f.readSync(head);
    f.close();
    if (head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c || head[3] !== 0x46) return false;
    const info = parseElf(Deno.readFileSync(path), path);
    return info.dynamic && info.needed.length > 0;
  } catch {
    return false;
  }
}

/** Every `stride`-th dynamic ELF file of `dir` in name order: the same sample on every run. */
function sample(dir: string, count: number): string[] {
  const names = [...Deno.readDirSync(dir)].filter((e) => e.isFile).map((e) => e.name).sort();
  const elves = names.map((n) => `${dir}/${n}`).filter(isDynamicElf);
  const stride = Math.max(1, Math.floor(elves.length / count));
  return elves.filter((_, i) => i % stride === 0).slice(0, count);
}

Deno.test("closures match the real loader on a sample of system ELF files", async () => {
  const files = [
    ...sample("/usr/bin", 25),
    ...sample("/usr/sbin", 10),
    ...sample("/usr/lib/x86_64-linux-gnu", 25),
  ];
  const resolver = new DepResolver();
  let compared = 0;
  for (const file of files) {
    const real = await loaderList(file);
    if (real.code !== 0 && real.paths.size === 0 && real.missing.size === 0) continue;
    const mine = ours(resolver, file);
    assert.deepEqual(sorted(mine.paths), sorted(real.paths), `libraries of ${file}`);
    assert.deepEqual(sorted(mine.missing), sorted(real.missing), `missing libraries of ${file}`);
    compared++;
  }
  assert.ok(compared >= 40, `only ${compared} files compared`);
});

Deno.test("closure of ssh, rsync, git, perl, vim.basic and 200 /usr/bin files: well under 1 s", async () => {
  const big = [
    "/usr/bin/ssh",
    "/usr/bin/rsync",
    "/usr/bin/git",
    "/usr/bin/perl",
    "/usr/bin/vim.basic",
  ]
    .filter((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
  const names = [...Deno.readDirSync("/usr/bin")].map((e) => e.name).sort();
  const files = [...big, ...names.slice(0, 200).map((n) => `/usr/bin/${n}`)];
  const start = performance.now();
  const c = new DepResolver().closure(files);
  const ms = performance.now() - start;
  console.log(
    `  ${files.length} files, ${c.dependencies.length} dependencies in ${ms.toFixed(0)} ms`,
  );
  assert.ok(ms < 1000, `took ${ms} ms`);
  // Spot check against the loader for the big ones.
  for (const p of big) {
    const mine = ours(new DepResolver(), p);
    assert.deepEqual(sorted(mine.paths), sorted((await loaderList(p)).paths), p);
  }
});

/** Runs cc; throws with its output on failure. */
async function cc(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("cc", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`cc ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Rewrites the tag of the first dynamic entry tagged `from` (ELF64 LE) to `to`. */
function patchDynamicTag(path: string, from: number, to: number): void {
  const bytes = Deno.readFileSync(path);
  const info = parseElf(bytes, path);
  const dyn = info.programHeaders.find((p) => p.type === 2)!;
  const view = new DataView(bytes.buffer);
  for (let at = dyn.offset; at < dyn.offset + dyn.filesz; at += 16) {
    if (view.getUint32(at, true) === from) {
      view.setUint32(at, to, true);
      Deno.writeFileSync(path, bytes);
      return;
    }
  }
  throw new Error(`${path}: no dynamic tag ${from}`);
}

/** Writes a copy of `src` at `dst` with one byte changed. */
function patchedCopy(src: string, dst: string, offset: number, value: number): void {
  const bytes = Deno.readFileSync(src);
  bytes[offset] = value;
  Deno.writeFileSync(dst, bytes);
}

async function withDir(label: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await scratchDir(label);
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Asserts that our closure of `file` equals the loader's, and returns ours. */
async function sameAsLoader(file: string): Promise<{ paths: Set<string>; missing: Set<string> }> {
  const real = await loaderList(file);
  const mine = ours(new DepResolver(), file);
  assert.deepEqual(sorted(mine.paths), sorted(real.paths), `libraries of ${file}`);
  assert.deepEqual(sorted(mine.missing), sorted(real.missing), `missing libraries of ${file}`);
  return mine;
}

Deno.test("RUNPATH, inherited RPATH, RPATH ignored beside RUNPATH, $ORIGIN/$LIB/$PLATFORM", async () => {
  await withDir("deps-origin", async (t) => {
    for (
      const d of ["bin", "lib", "lib2", "lib3", "libR", "libU", "lib/x86_64-linux-gnu", "x86_64"]
    ) {
      await Deno.mkdir(`${t}/${d}`, { recursive: true });
    }
    const src = (name: string, body: string) => Deno.writeTextFile(`${t}/${name}.c`, body);
    await src("b", "int b(void){return 1;}\n");
    await src("a", "int b(void); int a(void){return b();}\n");
    await src("main_a", "int a(void); int main(void){return a();}\n");
    await src("main_x", "int x(void); int main(void){return x();}\n");
    await src("x", "int x(void){return 0;}\n");
    await src("lp", "int l(void); int p(void); int main(void){return l()+p();}\n");
    const so = (out: string, c: string, ...extra: string[]) =>
      cc(t, "-shared", "-fPIC", "-o", out, c, ...extra);

    // RUNPATH=$ORIGIN/../lib on the program; liba finds libb through its own RUNPATH=$ORIGIN.
    await so("lib/libb.so", "b.c", "-Wl,-soname,libb.so");
    await so("lib/liba.so", "a.c", "-Wl,-soname,liba.so", "-Llib", "-lb", "-Wl,-rpath,$ORIGIN");
    await cc(t, "-o", "bin/prog", "main_a.c", "-Llib", "-la", "-Wl,-rpath,$ORIGIN/../lib");
    const runpath = await sameAsLoader(`${t}/bin/prog`);
    assert.ok(runpath.paths.has(`${t}/lib/libb.so`));

    // RUNPATH is not inherited: libe (no paths of its own) cannot find libf next to it.
    await so("lib3/libf.so", "b.c", "-Wl,-soname,libf.so");
    await so("lib3/libe.so", "a.c", "-Wl,-soname,libe.so", "-Llib3", "-lf");
    await Deno.writeTextFile(`${t}/main_e.c`, "int a(void); int main(void){return a();}\n");
    await cc(t, "-o", "bin/prog3", "main_e.c", "-Llib3", "-le", "-Wl,-rpath,$ORIGIN/../lib3");
    assert.deepEqual(sorted((await sameAsLoader(`${t}/bin/prog3`)).missing), ["libf.so"]);

    // DT_RPATH is inherited down the chain: libc2 finds libd2 through the program's RPATH.
    await so("lib2/libd2.so", "b.c", "-Wl,-soname,libd2.so");
    await so("lib2/libc2.so", "a.c", "-Wl,-soname,libc2.so", "-Llib2", "-ld2");
    await cc(
      t,
      "-o",
      "bin/prog2",
      "main_a.c",
      "-Llib2",
      "-lc2",
      "-Wl,--disable-new-dtags",
      "-Wl,-rpath,$ORIGIN/../lib2",
    );
    assert.ok((await sameAsLoader(`${t}/bin/prog2`)).paths.has(`${t}/lib2/libd2.so`));
    // ... and from a library, not only from the program: prog6 (RUNPATH) -> libi (RPATH
    // $ORIGIN:$ORIGIN/../libdeep) -> libj (no paths) -> libk, found through libi's RPATH.
    for (const d of ["lib4", "libdeep"]) await Deno.mkdir(`${t}/${d}`);
    await so("libdeep/libk.so", "b.c", "-Wl,-soname,libk.so");
    await so("lib4/libj.so", "a.c", "-Wl,-soname,libj.so", "-Llibdeep", "-lk");
    await so(
      "lib4/libi.so",
      "x.c",
      "-Wl,-soname,libi.so",
      "-Llib4",
      "-Llibdeep",
      "-Wl,--no-as-needed",
      "-lj",
      "-Wl,--disable-new-dtags",
      "-Wl,-rpath,$ORIGIN:$ORIGIN/../libdeep",
    );
    await cc(
      t,
      "-o",
      "bin/prog6",
      "main_x.c",
      "-Llib4",
      "-li",
      "-Wl,-rpath-link,libdeep",
      "-Wl,-rpath,$ORIGIN/../lib4",
    );
    assert.ok((await sameAsLoader(`${t}/bin/prog6`)).paths.has(`${t}/libdeep/libk.so`));

    // Both DT_RPATH and DT_RUNPATH: the RPATH (libR) is ignored, RUNPATH (libU) wins.
    // The linker cannot emit both, so the program's DT_SONAME string becomes its DT_RUNPATH.
    await so("libR/libx.so", "x.c", "-Wl,-soname,libx.so");
    await so("libU/libx.so", "x.c", "-Wl,-soname,libx.so", "-Wl,--build-id=sha1");
    await cc(
      t,
      "-o",
      "bin/prog4",
      "main_x.c",
      "-LlibR",
      "-lx",
      "-Wl,-soname,$ORIGIN/../libU",
      "-Wl,--disable-new-dtags",
      "-Wl,-rpath,$ORIGIN/../libR",
    );
    patchDynamicTag(`${t}/bin/prog4`, 14, 29);
    const both = await sameAsLoader(`${t}/bin/prog4`);
    assert.ok(both.paths.has(`${t}/libU/libx.so`) && !both.paths.has(`${t}/libR/libx.so`));

    // $LIB is lib/x86_64-linux-gnu on Debian; $PLATFORM is x86_64; braces work too.
    await so("lib/x86_64-linux-gnu/libl.so", "x.c", "-Wl,-soname,libl.so", "-Wl,--defsym,l=x");
    await so("x86_64/libp.so", "x.c", "-Wl,-soname,libp.so", "-Wl,--defsym,p=x");
    await cc(
      t,
      "-o",
      "bin/prog5",
      "lp.c",
      "-Llib/x86_64-linux-gnu",
      "-Lx86_64",
      "-ll",
      "-lp",
      "-Wl,-rpath,$ORIGIN/../$LIB:$ORIGIN/../${PLATFORM}",
    );
    const tokens = await sameAsLoader(`${t}/bin/prog5`);
    assert.ok(tokens.paths.has(`${t}/x86_64/libp.so`));
  });
});

Deno.test("libraries of another machine or class are skipped and the search goes on", async () => {
  await withDir("deps-arch", async (t) => {
    for (const d of ["bin", "good", "badmach", "badclass"]) await Deno.mkdir(`${t}/${d}`);
    await Deno.writeTextFile(`${t}/w.c`, "int w(void){return 0;}\n");
    await Deno.writeTextFile(`${t}/main.c`, "int w(void); int main(void){return w();}\n");
    await cc(t, "-shared", "-fPIC", "-o", "good/libw.so", "w.c", "-Wl,-soname,libw.so");
    patchedCopy(`${t}/good/libw.so`, `${t}/badmach/libw.so`, 18, 183); // e_machine = AArch64
    patchedCopy(`${t}/good/libw.so`, `${t}/badclass/libw.so`, 4, 1); // EI_CLASS = ELFCLASS32
    const rp = "-Wl,-rpath,$ORIGIN/../badmach:$ORIGIN/../badclass:$ORIGIN/../good";
    await cc(t, "-o", "bin/prog", "main.c", "-Lgood", "-lw", rp);
    const mine = await sameAsLoader(`${t}/bin/prog`);
    assert.ok(mine.paths.has(`${t}/good/libw.so`));

    // Only incompatible candidates: unresolved, with the reason naming them.
    await cc(t, "-o", "bin/bad", "main.c", "-Lgood", "-lw", "-Wl,-rpath,$ORIGIN/../badmach");
    await sameAsLoader(`${t}/bin/bad`);
    const c = new DepResolver({ ldSoCache: false }).closure([`${t}/bin/bad`]);
    const miss = c.unresolved.find((u) => u.name === "libw.so")!;
    assert.match(miss.reason, /only incompatible candidates: .*badmach\/libw\.so \(machine 183\)/);
    assert.equal(miss.neededBy, `${t}/bin/bad`);
  });
});

Deno.test("glibc-hwcaps: the baseline library is chosen, the variant reported beside it", async () => {
  await withDir("deps-hwcaps", async (t) => {
    await Deno.mkdir(`${t}/lib/glibc-hwcaps/x86-64-v2`, { recursive: true });
    await Deno.writeTextFile(`${t}/w.c`, "int w(void){return 0;}\n");
    await Deno.writeTextFile(`${t}/main.c`, "int w(void); int main(void){return w();}\n");
    await cc(t, "-shared", "-fPIC", "-o", "lib/libw.so", "w.c", "-Wl,-soname,libw.so");
    await Deno.copyFile(`${t}/lib/libw.so`, `${t}/lib/glibc-hwcaps/x86-64-v2/libw.so`);
    await cc(t, "-o", "prog", "main.c", "-Llib", "-lw", "-Wl,-rpath,$ORIGIN/lib");
    const c = new DepResolver().closure([`${t}/prog`]);
    const w = c.dependencies.find((d) => d.path.endsWith("/libw.so"))!;
    assert.equal(w.path, `${t}/lib/libw.so`);
    assert.deepEqual(w.hwcapsVariants, [`${t}/lib/glibc-hwcaps/x86-64-v2/libw.so`]);
    // The loader on this (x86-64-v2 capable) CPU takes the variant: a jail needs both.
    const real = await loaderList(`${t}/prog`);
    assert.ok(real.paths.has(`${t}/lib/glibc-hwcaps/x86-64-v2/libw.so`));
  });
});

Deno.test("-z nodefaultlib: neither the cache nor the default directories are searched", async () => {
  await withDir("deps-nodeflib", async (t) => {
    await Deno.writeTextFile(
      `${t}/z.c`,
      "#include <zlib.h>\nint main(void){return !zlibVersion();}\n",
    );
    await cc(t, "-o", "prog", "z.c", "-lz", "-Wl,-z,nodefaultlib");
    const mine = await sameAsLoader(`${t}/prog`);
    assert.ok(mine.missing.has("libz.so.1"));
  });
});

Deno.test("scripts bring their interpreter and its closure; env and nesting", async () => {
  await withDir("deps-script", async (t) => {
    await Deno.writeTextFile(`${t}/a.pl`, "#!/usr/bin/perl -w\nprint 1;\n");
    await Deno.writeTextFile(`${t}/b.sh`, `#!${t}/a.pl\n`);
    await Deno.writeTextFile(`${t}/c.py`, "#!/usr/bin/env python3\n");
    const resolver = new DepResolver();
    const perl = await loaderList("/usr/bin/perl");
    for (const script of [`${t}/a.pl`, `${t}/b.sh`]) {
      const c = resolver.closure([script]);
      const interp = c.dependencies.find((d) => d.path === "/usr/bin/perl");
      assert.equal(interp?.role, "script-interpreter");
      const libs = new Set(
        c.dependencies.filter((d) => d.role !== "script-interpreter").map((d) => d.realpath),
      );
      assert.deepEqual(sorted(libs), sorted(perl.paths), script);
      assert.deepEqual(c.unresolved, []);
    }
    assert.ok(resolver.closure([`${t}/b.sh`]).dependencies.some((d) => d.path === `${t}/a.pl`));
    const env = resolver.closure([`${t}/c.py`]);
    assert.ok(env.dependencies.some((d) => d.path === "/usr/bin/env"));
    assert.ok(env.warnings.some((w) => w.includes('"python3" through /usr/bin/env')));
    // A script naming a missing or relative interpreter is reported, not thrown.
    await Deno.writeTextFile(`${t}/d.sh`, "#!/nonexistent/sh\n");
    await Deno.writeTextFile(`${t}/e.sh`, "#!sh -x\n");
    const bad = resolver.closure([`${t}/d.sh`, `${t}/e.sh`, `${t}/nope`, t]);
    assert.deepEqual(bad.unresolved.map((u) => [u.name, u.neededBy]), [
      ["/nonexistent/sh", `${t}/d.sh`],
      ["sh", `${t}/e.sh`],
      [`${t}/nope`, null],
      [t, null],
    ]);
  });
});

/** Copies a closure into `root` the way a copier would: realpaths plus every symlink. */
async function copyInto(root: string, c: Closure): Promise<void> {
  for (const f of [...c.roots, ...c.dependencies]) {
    for (const link of f.symlinks) {
      await Deno.mkdir(`${root}${link.path.slice(0, link.path.lastIndexOf("/"))}`, {
        recursive: true,
      });
      try {
        await Deno.symlink(link.target, `${root}${link.path}`);
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
    }
    const dst = `${root}${f.realpath}`;
    await Deno.mkdir(dst.slice(0, dst.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(f.realpath, dst);
  }
}

Deno.test({
  name: "jail roots: resolution stays inside the root; a copied closure runs under chroot",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    await withDir("deps-jail", async (root) => {
      // An escape attempt: absolute and relative links that point out of the root.
      await Deno.mkdir(`${root}/usr/bin`, { recursive: true });
      await Deno.copyFile("/usr/bin/ls", `${root}/usr/bin/ls`);
      await Deno.symlink("/usr/lib", `${root}/lib`);
      await Deno.symlink("../../../../../usr/lib64", `${root}/lib64`);
      await Deno.symlink("../../../../..", `${root}/usr/up`);
      const jail = new DepResolver({ root });
      const c = jail.closure(["/usr/bin/ls", "/usr/up/etc/passwd"]);
      assert.deepEqual(c.dependencies, [], "nothing outside the root may be found");
      assert.deepEqual(sorted(new Set(c.unresolved.map((u) => u.name))), [
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/up/etc/passwd",
        "libc.so.6",
        "libselinux.so.1",
      ]);
      assert.equal(jail.paths.resolve("/usr/up/usr/bin/ls").real, "/usr/bin/ls");
      assert.equal(jail.paths.resolve("/lib/x86_64-linux-gnu").kind, "missing");

      // A symlink loop inside the root ends with ELOOP, not a hang.
      await Deno.symlink("loop2", `${root}/loop1`);
      await Deno.symlink("loop1", `${root}/loop2`);
      assert.equal(jail.paths.resolve("/loop1/x").error, "too many levels of symbolic links");
    });

    await withDir("deps-jail", async (root) => {
      // Copy the host closure of ls and sh (realpaths + symlinks), then resolve inside.
      const host = new DepResolver().closure(["/usr/bin/ls", "/usr/bin/dash"]);
      await copyInto(root, host);
      const inside = new DepResolver({ root }).closure(["/usr/bin/ls", "/usr/bin/dash"]);
      assert.deepEqual(inside.unresolved, []);
      assert.deepEqual(
        sorted(new Set(inside.dependencies.map((d) => d.realpath))),
        sorted(new Set(host.dependencies.map((d) => d.realpath))),
      );
      assert.ok(inside.dependencies.some((d) => d.symlinks.some((l) => l.path === "/lib64")));
      // The real proof: the kernel and loader find everything in the jail.
      const run = await new Deno.Command("chroot", {
        args: [root, "/usr/bin/ls", "/usr/bin"],
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
      assert.match(new TextDecoder().decode(run.stdout), /dash/);

      // With the host's cache copied in, resolution goes through it; a corrupt cache is
      // ignored with a warning, as the loader ignores it.
      await Deno.mkdir(`${root}/etc`);
      await Deno.copyFile("/etc/ld.so.cache", `${root}/etc/ld.so.cache`);
      assert.deepEqual(new DepResolver({ root }).closure(["/usr/bin/ls"]).unresolved, []);
      await Deno.writeFile(`${root}/etc/ld.so.cache`, new Uint8Array(100).fill(0x41));
      const corrupt = new DepResolver({ root }).closure(["/usr/bin/ls"]);
      assert.deepEqual(corrupt.unresolved, []);
      assert.ok(corrupt.warnings.some((w) => w.startsWith("/etc/ld.so.cache: ignored")));

      // A preload list in the jail is honoured (and flagged).
      const libz = new DepResolver().closure(["/usr/lib/x86_64-linux-gnu/libz.so.1"]);
      await copyInto(root, libz);
      await Deno.writeTextFile(`${root}/etc/ld.so.preload`, "# comment\nlibz.so.1\n");
      const pre = new DepResolver({ root }).closure(["/usr/bin/ls"]);
      const z = pre.dependencies.find((d) => d.role === "preload");
      assert.equal(z?.realpath, Deno.realPathSync("/usr/lib/x86_64-linux-gnu/libz.so.1"));
      assert.ok(pre.warnings.some((w) => w.includes("preloads libz.so.1")));
    });
  },
});

Deno.test("hostile libraries in a root give unresolved entries, never exceptions", async () => {
  await withDir("deps-hostile", async (root) => {
    await Deno.mkdir(`${root}/usr/bin`, { recursive: true });
    await Deno.mkdir(`${root}/lib`, { recursive: true });
    await Deno.copyFile("/usr/bin/ls", `${root}/usr/bin/ls`);
    const good = Deno.readFileSync(Deno.realPathSync("/lib/x86_64-linux-gnu/libselinux.so.1"));
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 200; i++) {
      const bytes = good.slice(0, 4096 + Math.floor(rand() * 8192));
      for (let k = 0; k < 8; k++) bytes[Math.floor(rand() * 1024)] = Math.floor(rand() * 256);
      Deno.writeFileSync(`${root}/lib/libselinux.so.1`, bytes);
      const c = new DepResolver({ root, defaultDirs: ["/lib"] }).closure(["/usr/bin/ls"]);
      assert.ok(c.unresolved.length > 0); // libc.so.6 is absent at least
    }
    // A work budget: 100 missing needs times a 1300-directory RPATH stops early, and says so.
    await Deno.writeTextFile(`${root}/s.c`, "int s(void){return 0;}\n");
    await cc(root, "-shared", "-fPIC", "-o", "libstub.so", "s.c");
    const stubs = Array.from({ length: 100 }, (_, i) => `libn${i}.so`);
    for (const s of stubs) await Deno.copyFile(`${root}/libstub.so`, `${root}/${s}`);
    const rpath = Array.from({ length: 1300 }, (_, i) => `/d${i}`).join(":");
    await cc(
      root,
      "-shared",
      "-fPIC",
      "-o",
      "usr/bin/wide.so",
      "s.c",
      "-L.",
      "-Wl,--no-as-needed",
      ...stubs.map((s) => `-l:${s}`),
      "-Wl,--disable-new-dtags",
      `-Wl,-rpath,${rpath}`,
    );
    for (const s of stubs) await Deno.remove(`${root}/${s}`);
    const t0 = performance.now();
    const wide = new DepResolver({ root }).closure(["/usr/bin/wide.so"]);
    assert.ok(performance.now() - t0 < 3000);
    const stop = wide.unresolved.find((u) => u.name === "(remaining dependencies)");
    assert.match(stop?.reason ?? "", /more than 100000 candidate files examined/);
    const few = new DepResolver({ maxObjects: 3 }).closure(["/usr/bin/ssh"]);
    assert.match(few.unresolved.at(-1)?.reason ?? "", /more than 3 objects/);
    assert.throws(() => new DepResolver({ root: `${root}/nope` }), /nope: no such file/);

    // Directories, FIFOs and devices in the search path are errors, not hangs.
    Deno.removeSync(`${root}/lib/libselinux.so.1`);
    await new Deno.Command("mkfifo", { args: [`${root}/lib/libselinux.so.1`] }).output();
    const fifo = new DepResolver({ root, defaultDirs: ["/lib"] }).closure(["/usr/bin/ls"]);
    assert.match(
      fifo.unresolved.find((u) => u.name === "libselinux.so.1")!.reason,
      /not a regular/,
    );
  });
});
