/**
 * ELF and loader-configuration parsers: fields against binutils' readelf and
 * glibc's `ldconfig -p`, hand-crafted hostile files, and a seeded fuzz run in
 * which anything but a typed error (ElfError, LdCacheError, LdSoConfError)
 * fails the test.
 */
import assert from "node:assert/strict";
import {
  DF_1_NODEFLIB,
  ElfError,
  type ElfInfo,
  inspectFileSync,
  isElf,
  parseElf,
  readElfFile,
  readElfFileSync,
  readElfIdent,
  readShebang,
} from "../src/elf.ts";
import {
  archAbi,
  cacheNameCompare,
  type ConfFileAccess,
  LdCacheError,
  LdSoConfError,
  lookupLdCache,
  parseLdCache,
  readLdCacheSync,
  readLdSoConf,
} from "../src/ldcache.ts";
import { Rng, testSeed } from "./harness.ts";

// ---------------------------------------------------------------------------
// Helpers

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed`);
  return new TextDecoder().decode(out.stdout);
}

interface Craft {
  cls?: 32 | 64;
  le?: boolean;
  type?: number;
  machine?: number;
  interp?: string | null;
  needed?: string[];
  soname?: string;
  rpath?: string;
  runpath?: string;
  flags1?: number;
  /** Extra raw dynamic entries, appended before DT_NULL. */
  extraDyn?: [number, number][];
}

interface Crafted {
  bytes: Uint8Array;
  phoff: number;
  dynOff: number;
  strOff: number;
  interpOff: number;
  base: number;
}

/**
 * Builds a minimal, valid ELF file: PT_LOAD mapping the whole file at a
 * non-zero base, PT_INTERP, PT_DYNAMIC, a string table and a dynamic array.
 * Offsets are returned so tests can corrupt exactly one thing.
 */
function buildElf(c: Craft = {}): Crafted {
  const cls = c.cls ?? 64;
  const le = c.le ?? true;
  const is64 = cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const base = 0x10000;
  const interp = c.interp === undefined ? "/lib64/ld-linux-x86-64.so.2" : c.interp;
  const phnum = interp === null ? 2 : 3;
  const enc = new TextEncoder();
  const strs: number[] = [0];
  const addStr = (s: string) => {
    const at = strs.length;
    strs.push(...enc.encode(s), 0);
    return at;
  };
  const dyn: [number, number][] = [];
  for (const n of c.needed ?? ["libc.so.6"]) dyn.push([1, addStr(n)]);
  if (c.soname !== undefined) dyn.push([14, addStr(c.soname)]);
  if (c.rpath !== undefined) dyn.push([15, addStr(c.rpath)]);
  if (c.runpath !== undefined) dyn.push([29, addStr(c.runpath)]);
  if (c.flags1 !== undefined) dyn.push([0x6ffffffb, c.flags1]);
  const phoff = ehsize;
  const interpOff = phoff + phnum * phentsize;
  const interpBytes = interp === null ? new Uint8Array(0) : enc.encode(interp + "\0");
  const strOff = interpOff + interpBytes.length;
  const dynOff = Math.ceil((strOff + strs.length) / 8) * 8;
  dyn.push([5, base + strOff], [10, strs.length], ...(c.extraDyn ?? []), [0, 0]);
  const entsize = is64 ? 16 : 8;
  const total = dynOff + dyn.length * entsize;
  const bytes = new Uint8Array(total);
  const v = new DataView(bytes.buffer);
  const word = (at: number, x: number) =>
    is64 ? v.setBigUint64(at, BigInt(x), le) : v.setUint32(at, x, le);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, le ? 1 : 2, 1, 0]);
  v.setUint16(16, c.type ?? 3, le);
  v.setUint16(18, c.machine ?? 62, le);
  v.setUint32(20, 1, le);
  if (is64) {
    v.setBigUint64(32, BigInt(phoff), le);
    v.setUint16(52, ehsize, le);
    v.setUint16(54, phentsize, le);
    v.setUint16(56, phnum, le);
  } else {
    v.setUint32(28, phoff, le);
    v.setUint16(40, ehsize, le);
    v.setUint16(42, phentsize, le);
    v.setUint16(44, phnum, le);
  }
  const phdr = (i: number, type: number, off: number, size: number) => {
    const at = phoff + i * phentsize;
    v.setUint32(at, type, le);
    if (is64) {
      v.setUint32(at + 4, 4, le);
      word(at + 8, off);
      word(at + 16, base + off);
      word(at + 24, base + off);
      word(at + 32, size);
      word(at + 40, size);
      word(at + 48, 8);
    } else {
      v.setUint32(at + 4, off, le);
      v.setUint32(at + 8, base + off, le);
      v.setUint32(at + 12, base + off, le);
      v.setUint32(at + 16, size, le);
      v.setUint32(at + 20, size, le);
      v.setUint32(at + 24, 4, le);
      v.setUint32(at + 28, 8, le);
    }
  };
  // PT_LOAD maps the file from offset 0 at `base`.
  phdr(0, 1, 0, total);
  if (interp !== null) phdr(1, 3, interpOff, interpBytes.length);
  phdr(phnum - 1, 2, dynOff, dyn.length * entsize);
  bytes.set(interpBytes, interpOff);
  bytes.set(strs, strOff);
  dyn.forEach(([tag, val], i) => {
    word(dynOff + i * entsize, tag);
    word(dynOff + i * entsize + (is64 ? 8 : 4), val);
  });
  return { bytes, phoff, dynOff, strOff, interpOff, base };
}

function elfError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ElfError, `expected ElfError, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
}

// ---------------------------------------------------------------------------
// Against readelf

const FLAGS_1_NAMES: Record<string, number> = {
  NOW: 0x1,
  GLOBAL: 0x2,
  GROUP: 0x4,
  NODELETE: 0x8,
  LOADFLTR: 0x10,
  INITFIRST: 0x20,
  NOOPEN: 0x40,
  ORIGIN: 0x80,
  DIRECT: 0x100,
  INTERPOSE: 0x400,
  NODEFLIB: 0x800,
  NODUMP: 0x1000,
  PIE: 0x8000000,
};

const PT_NAMES: Record<string, number> = {
  LOAD: 1,
  DYNAMIC: 2,
  INTERP: 3,
  NOTE: 4,
  PHDR: 6,
  TLS: 7,
  GNU_EH_FRAME: 0x6474e550,
  GNU_STACK: 0x6474e551,
  GNU_RELRO: 0x6474e552,
  GNU_PROPERTY: 0x6474e553,
};

/** Compares every field we parse with `readelf -lW` and `readelf -dW`. */
async function compareWithReadelf(file: string, info: ElfInfo): Promise<void> {
  const l = await run("readelf", ["-lW", file]);
  const rows = [
    ...l.matchAll(
      /^\s+(\w+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+) 0x([0-9a-f]+) /gm,
    ),
  ];
  assert.equal(info.programHeaders.length, rows.length, `${file}: program header count`);
  rows.forEach((r, i) => {
    const p = info.programHeaders[i];
    if (r[1] in PT_NAMES) assert.equal(p.type, PT_NAMES[r[1]], `${file} phdr ${i} type`);
    assert.deepEqual(
      [p.offset, p.vaddr, p.filesz, p.memsz],
      [r[2], r[3], r[4], r[5]].map((x) => parseInt(x, 16)),
      `${file} phdr ${i}`,
    );
  });
  const interp = l.match(/\[Requesting program interpreter: (.*)\]/);
  assert.equal(info.interpreter, interp ? interp[1] : null, `${file}: interpreter`);

  const d = await run("readelf", ["-dW", file]);
  const bracket = (kind: string) =>
    [...d.matchAll(new RegExp(`\\(${kind}\\)\\s+[^\\[]*\\[(.*)\\]`, "g"))].map((m) => m[1]);
  assert.deepEqual(info.needed, bracket("NEEDED"), `${file}: DT_NEEDED`);
  assert.equal(info.soname, bracket("SONAME")[0] ?? null, `${file}: DT_SONAME`);
  assert.equal(info.rpath, bracket("RPATH")[0] ?? null, `${file}: DT_RPATH`);
  assert.equal(info.runpath, bracket("RUNPATH")[0] ?? null, `${file}: DT_RUNPATH`);
  const f1 = d.match(/\(FLAGS_1\)\s+Flags: (.*)/);
  const bits = (f1 ? f1[1].trim().split(/\s+/) : []).reduce((acc, name) => {
    assert.ok(name in FLAGS_1_NAMES, `unknown FLAGS_1 name ${name}`);
    return acc | FLAGS_1_NAMES[name];
  }, 0);
  assert.equal(info.flags1, bits, `${file}: DT_FLAGS_1`);
  assert.equal(info.dynamic, /Dynamic section at offset/.test(d), `${file}: PT_DYNAMIC`);
}

Deno.test("/bin/ls: every parsed field matches readelf -d -l", async () => {
  const info = readElfFileSync("/bin/ls");
  assert.equal(info.elfClass, 64);
  assert.equal(info.machine, 62);
  assert.equal(info.type, 3);
  assert.equal(info.interpreter, "/lib64/ld-linux-x86-64.so.2");
  assert.ok(info.needed.includes("libc.so.6"));
  await compareWithReadelf("/bin/ls", info);
  assert.deepEqual(info, parseElf(Deno.readFileSync("/bin/ls"), "/bin/ls"));
  assert.deepEqual(await readElfFile("/bin/ls"), info);
});

Deno.test("system files and built RPATH/RUNPATH/NODEFLIB libraries match readelf", async () => {
  const files = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/bin/ssh",
    "/usr/bin/perl",
    Deno.realPathSync("/lib64/ld-linux-x86-64.so.2"),
  ];
  const dir = await Deno.makeTempDir({ prefix: "jk-elf-" });
  try {
    await Deno.writeTextFile(`${dir}/x.c`, "int x(void){return 0;}\n");
    const build = (out: string, ...flags: string[]) =>
      run("cc", ["-shared", "-fPIC", "-o", `${dir}/${out}`, `${dir}/x.c`, ...flags]);
    await build("runpath.so", "-Wl,-soname,librp.so.1", "-Wl,-rpath,$ORIGIN/../lib:/opt/x");
    await build("rpath.so", "-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/${LIB}");
    await build("nodeflib.so", "-Wl,-z,nodefaultlib", "-Wl,-z,now");
    files.push(`${dir}/runpath.so`, `${dir}/rpath.so`, `${dir}/nodeflib.so`);
    for (const f of files) await compareWithReadelf(f, readElfFileSync(f));
    assert.equal(readElfFileSync(`${dir}/runpath.so`).runpath, "$ORIGIN/../lib:/opt/x");
    assert.equal(readElfFileSync(`${dir}/rpath.so`).rpath, "/opt/${LIB}");
    assert.ok(readElfFileSync(`${dir}/nodeflib.so`).nodeflib);
    assert.equal(readElfFileSync(`${dir}/nodeflib.so`).flags1 & DF_1_NODEFLIB, DF_1_NODEFLIB);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Crafted files

Deno.test("crafted ELF32 big-endian and ELF64 little-endian files parse", () => {
  for (const cls of [32, 64] as const) {
    for (const le of [true, false]) {
      const { bytes } = buildElf({
        cls,
        le,
        machine: 20,
        needed: ["liba.so.1", "libb.so.2"],
        soname: "libme.so.3",
        rpath: "/r",
        runpath: "$ORIGIN/x",
        flags1: DF_1_NODEFLIB | 1,
      });
      const info = parseElf(bytes, "crafted");
      assert.equal(info.elfClass, cls);
      assert.equal(info.littleEndian, le);
      assert.equal(info.machine, 20);
      assert.equal(info.interpreter, "/lib64/ld-linux-x86-64.so.2");
      assert.deepEqual(info.needed, ["liba.so.1", "libb.so.2"]);
      assert.deepEqual([info.soname, info.rpath, info.runpath], ["libme.so.3", "/r", "$ORIGIN/x"]);
      assert.ok(info.nodeflib);
    }
  }
  const ident = readElfIdent(buildElf({ cls: 32, le: false }).bytes, "x");
  assert.deepEqual([ident.elfClass, ident.littleEndian, ident.version], [32, false, 1]);
  assert.ok(isElf(buildElf().bytes));
  assert.ok(!isElf(new TextEncoder().encode("#!/bin/sh")));
});

Deno.test("hostile ELF headers give an ElfError naming file and problem", () => {
  const set64 = (b: Uint8Array, at: number, x: bigint) =>
    new DataView(b.buffer).setBigUint64(at, x, true);
  const set32 = (b: Uint8Array, at: number, x: number) =>
    new DataView(b.buffer).setUint32(at, x, true);
  const set16 = (b: Uint8Array, at: number, x: number) =>
    new DataView(b.buffer).setUint16(at, x, true);
  const fresh = () => buildElf({ needed: ["libc.so.6"], runpath: "/x" });

  elfError(() => parseElf(new Uint8Array(0), "empty"), /^empty: not an ELF file/);
  elfError(() => parseElf(fresh().bytes.slice(0, 20), "short"), /^short: truncated ELF header/);
  elfError(() => parseElf(fresh().bytes.slice(0, 40), "short"), /ELF header extends past end/);
  let c = fresh();
  c.bytes[4] = 7;
  elfError(() => parseElf(c.bytes, "f"), /unknown ELF class 7/);
  c = fresh();
  c.bytes[5] = 0;
  elfError(() => parseElf(c.bytes, "f"), /unknown ELF data encoding 0/);
  c = fresh();
  set64(c.bytes, 32, 0xffffffffn);
  elfError(() => parseElf(c.bytes, "f"), /program header table extends past end of file/);
  c = fresh();
  set64(c.bytes, 32, 1n << 60n);
  elfError(() => parseElf(c.bytes, "f"), /e_phoff is out of range/);
  c = fresh();
  set16(c.bytes, 56, 0xffff);
  elfError(() => parseElf(c.bytes, "f"), /PN_XNUM/);
  c = fresh();
  set16(c.bytes, 56, 0xfffe);
  elfError(() => parseElf(c.bytes, "f"), /program header table extends past end/);
  c = fresh();
  set16(c.bytes, 54, 40);
  elfError(() => parseElf(c.bytes, "f"), /e_phentsize is 40, expected 56/);
  // PT_INTERP: missing NUL, too large, empty, past the end; two of them.
  c = fresh();
  c.bytes[c.interpOff + 27] = 0x41;
  elfError(() => parseElf(c.bytes, "f"), /PT_INTERP is not NUL-terminated/);
  c = fresh();
  set64(c.bytes, c.phoff + 56 + 32, 5000n);
  elfError(() => parseElf(c.bytes, "f"), /PT_INTERP size 5000 is out of range/);
  c = fresh();
  c.bytes[c.interpOff] = 0;
  elfError(() => parseElf(c.bytes, "f"), /PT_INTERP is empty/);
  c = fresh();
  set64(c.bytes, c.phoff + 56 + 8, BigInt(c.bytes.length - 4));
  elfError(() => parseElf(c.bytes, "f"), /PT_INTERP extends past end of file/);
  c = fresh();
  set32(c.bytes, c.phoff, 3); // the PT_LOAD becomes a second PT_INTERP
  elfError(() => parseElf(c.bytes, "f"), /more than one PT_INTERP/);
  c = fresh();
  set32(c.bytes, c.phoff + 56, 2);
  elfError(() => parseElf(c.bytes, "f"), /more than one PT_DYNAMIC/);
  // PT_DYNAMIC: p_offset disagreeing with its mapping; absurd size.
  c = fresh();
  set64(c.bytes, c.phoff + 112 + 8, BigInt(c.dynOff - 8));
  elfError(() => parseElf(c.bytes, "f"), /PT_DYNAMIC offset does not match its PT_LOAD mapping/);
  c = fresh();
  set64(c.bytes, c.phoff + 112 + 32, 1n << 40n);
  elfError(() => parseElf(c.bytes, "f"), /PT_DYNAMIC has \d+ entries/);
  c = fresh();
  set64(c.bytes, c.phoff + 112 + 32, 65536n * 16n);
  elfError(() => parseElf(c.bytes, "f"), /PT_DYNAMIC extends past end of file/);
  // Strings: DT_STRTAB unmapped, offsets outside DT_STRSZ, unterminated, not UTF-8, too long.
  c = buildElf({ extraDyn: [[5, 0x999999]] }); // a later DT_STRTAB wins, as in glibc
  elfError(() => parseElf(c.bytes, "f"), /DT_STRTAB is not inside any PT_LOAD segment/);
  c = buildElf({ extraDyn: [[1, 100000]] });
  elfError(() => parseElf(c.bytes, "f"), /DT_NEEDED string offset 100000 is outside DT_STRTAB/);
  c = buildElf({ needed: ["libc.so.6"], extraDyn: [[10, 5]] });
  elfError(() => parseElf(c.bytes, "f"), /DT_NEEDED is unterminated/);
  c = buildElf({ needed: ["lib\u00e9.so"] });
  c.bytes[c.strOff + 4] = 0xff;
  elfError(() => parseElf(c.bytes, "f"), /DT_NEEDED is not valid UTF-8/);
  c = buildElf({ needed: ["x".repeat(5000)] });
  elfError(() => parseElf(c.bytes, "f"), /DT_NEEDED is longer than 4096 bytes/);
  c = buildElf({ needed: ["libc.so.6"] });
  c.bytes.fill(0x41, c.strOff, c.dynOff); // string table without any NUL, up to the dynamic array
  elfError(() => parseElf(c.bytes, "f"), /is unterminated|outside DT_STRTAB/);
  // A DT_NEEDED value of 2^53 or more.
  c = buildElf({ extraDyn: [[1, 0]] });
  set64(c.bytes, c.dynOff + 3 * 16 + 8, 1n << 62n);
  elfError(() => parseElf(c.bytes, "f"), /dynamic entry 3 value is out of range/);
  // Too many DT_NEEDED entries.
  c = buildElf({ extraDyn: Array.from({ length: 5000 }, (): [number, number] => [1, 1]) });
  elfError(() => parseElf(c.bytes, "f"), /more than 4096 DT_NEEDED/);
  // Strings without a string table.
  c = buildElf({ needed: ["a"] });
  set64(c.bytes, c.dynOff + 16, 0x6ffffff0n); // DT_STRTAB becomes DT_VERSYM
  elfError(() => parseElf(c.bytes, "f"), /has strings but no DT_STRTAB/);
});

Deno.test("benign oddities: no DT_NULL, unknown 64-bit tags, no program headers, static", () => {
  let c = buildElf({ needed: ["a.so"] });
  const noNull = c.bytes.slice(0, c.bytes.length - 16); // drop DT_NULL
  const v = new DataView(noNull.buffer);
  v.setBigUint64(c.phoff + 112 + 32, BigInt(noNull.length - c.dynOff), true);
  assert.deepEqual(parseElf(noNull, "f").needed, ["a.so"]);
  c = buildElf({ needed: ["a.so"], extraDyn: [[0x7fffffff, 0]] });
  new DataView(c.bytes.buffer).setUint32(c.dynOff + 3 * 16 + 4, 1, true); // tag high half != 0
  assert.deepEqual(parseElf(c.bytes, "f").filters, []);
  c = buildElf();
  new DataView(c.bytes.buffer).setUint16(56, 0, true);
  const none = parseElf(c.bytes, "f");
  assert.deepEqual([none.programHeaders, none.interpreter, none.dynamic], [[], null, false]);
  const stat = parseElf(buildElf({ interp: null, needed: [] }).bytes, "f");
  assert.deepEqual([stat.interpreter, stat.needed], [null, []]);
});

Deno.test("files: symlinks and FIFOs refused without blocking, a sparse 1 GiB file read in pages", async () => {
  const dir = await Deno.makeTempDir({ prefix: "jk-elf-" });
  try {
    const big = `${dir}/big`;
    const ls = Deno.readFileSync("/bin/ls");
    const f = await Deno.open(big, { write: true, create: true });
    await f.write(ls);
    await f.truncate(1024 ** 3);
    f.close();
    const t0 = performance.now();
    const info = readElfFileSync(big);
    const ms = performance.now() - t0;
    assert.deepEqual(info.needed, parseElf(ls, "ls").needed);
    assert.ok(ms < 200, `a 1 GiB file took ${ms} ms: it was read whole`);

    await Deno.symlink("/bin/ls", `${dir}/link`);
    elfError(() => readElfFileSync(`${dir}/link`), /link: is a symlink/);
    await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
    elfError(() => readElfFileSync(`${dir}/fifo`), /fifo: not a regular file/);
    elfError(() => readElfFileSync(dir), /not a regular file/);
    elfError(() => readElfFileSync(`${dir}/nope`), /nope: no such file/);
    await Deno.writeTextFile(`${dir}/script`, "#!/bin/sh -e\necho\n");
    elfError(() => readElfFileSync(`${dir}/script`), /script: not an ELF file/);
    const insp = inspectFileSync(`${dir}/script`);
    assert.deepEqual(readShebang(insp.head), { interpreter: "/bin/sh", argument: "-e" });
    await Deno.writeFile(`${dir}/broken`, ls.slice(0, 100));
    assert.match(inspectFileSync(`${dir}/broken`).elfError!.message, /broken: .*past end of file/);
    await assert.rejects(() => readElfFile(`${dir}/broken`), ElfError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readShebang follows the kernel's binfmt_script rules", () => {
  const sb = (s: string) => readShebang(new TextEncoder().encode(s));
  assert.deepEqual(sb("#!/usr/bin/perl -w\nprint"), {
    interpreter: "/usr/bin/perl",
    argument: "-w",
  });
  assert.deepEqual(sb("#! \t/bin/sh\n"), { interpreter: "/bin/sh", argument: null });
  assert.deepEqual(sb("#!/usr/bin/env -S a b  \t\n"), {
    interpreter: "/usr/bin/env",
    argument: "-S a b",
  });
  assert.deepEqual(sb("#!/bin/sh"), { interpreter: "/bin/sh", argument: null });
  assert.deepEqual(sb("#!/bin/sh\0-x\n"), { interpreter: "/bin/sh", argument: null });
  assert.deepEqual(sb("#!/bin/sh -a\0b\n"), { interpreter: "/bin/sh", argument: "-a" });
  assert.equal(sb("#!\n"), null);
  assert.equal(sb("#!   \n"), null);
  assert.equal(sb("# !/bin/sh\n"), null);
  assert.equal(sb("\x7fELF"), null);
  assert.equal(sb(""), null);
  // No newline in the first 256 bytes: fine if the name ended, refused if it may be cut.
  assert.deepEqual(sb(`#!/bin/sh ${"x".repeat(400)}`), {
    interpreter: "/bin/sh",
    argument: "x".repeat(245),
  });
  assert.equal(sb(`#!/${"a".repeat(400)}`), null);
});

// ---------------------------------------------------------------------------
// ld.so.cache and ld.so.conf

Deno.test("/etc/ld.so.cache: the same entries as ldconfig -p, and lookups", async () => {
  const cache = readLdCacheSync("/etc/ld.so.cache");
  const listed = await run("ldconfig", ["-p"]);
  const count = Number(listed.match(/^(\d+) libs found/)![1]);
  assert.equal(cache.entries.length, count);
  const theirs = [...listed.matchAll(/^\t(\S+) \(([^)]*)\) => (\S+)$/gm)]
    .map((m) => `${m[1]} ${m[2].includes("x86-64") ? "x86-64" : m[2]} ${m[3]}`);
  const mine = cache.entries.map((e) =>
    `${e.name} ${e.flags === 0x303 ? "x86-64" : e.flags.toString(16)} ${e.path}`
  );
  assert.deepEqual(mine, theirs);
  assert.match(cache.generator ?? "", /ldconfig/);
  const abi = archAbi(62, 64, 0)!;
  const libc = lookupLdCache(cache, "libc.so.6", abi).path!;
  assert.equal(Deno.realPathSync(libc), Deno.realPathSync("/usr/lib/x86_64-linux-gnu/libc.so.6"));
  assert.equal(lookupLdCache(cache, "libc.so.6", archAbi(3, 32, 0)).path, null);
  assert.equal(lookupLdCache(cache, "libnope.so.9", abi).path, null);
});

interface CacheEntrySpec {
  name: string;
  path: string;
  flags?: number;
  hwcap?: bigint;
}

/** Builds a cache: new format, optionally behind an old table, or old only. */
function buildCache(
  entries: CacheEntrySpec[],
  opts: { le?: boolean; hwcaps?: string[]; layout?: "new" | "old+new" | "old" } = {},
): Uint8Array {
  const le = opts.le ?? true;
  const layout = opts.layout ?? "new";
  const enc = new TextEncoder();
  if (layout === "old") {
    const strs: number[] = [];
    const add = (s: string) => {
      const at = strs.length;
      strs.push(...enc.encode(s), 0);
      return at;
    };
    const keys = entries.map((e) => [add(e.name), add(e.path)]);
    const out = new Uint8Array(16 + entries.length * 12 + strs.length);
    const v = new DataView(out.buffer);
    out.set(enc.encode("ld.so-1.7.0"));
    v.setUint32(12, entries.length, true);
    entries.forEach((e, i) => {
      v.setInt32(16 + i * 12, e.flags ?? 0x303, true);
      v.setUint32(16 + i * 12 + 4, keys[i][0], true);
      v.setUint32(16 + i * 12 + 8, keys[i][1], true);
    });
    out.set(strs, 16 + entries.length * 12);
    return out;
  }
  const prefix = layout === "old+new" ? Math.ceil((16 + 2 * 12) / 8) * 8 : 0;
  const tableEnd = 48 + entries.length * 24;
  const strs: number[] = [];
  const add = (s: string) => {
    const at = tableEnd + strs.length; // offsets from the new header
    strs.push(...enc.encode(s), 0);
    return at;
  };
  const keys = entries.map((e) => [add(e.name), add(e.path)]);
  const hw = (opts.hwcaps ?? []).map((h) => prefix + add(h)); // offsets from the file start
  const extAt = Math.ceil((prefix + tableEnd + strs.length) / 4) * 4;
  const extSize = hw.length > 0 ? 8 + 16 + hw.length * 4 : 0;
  const out = new Uint8Array(extAt + extSize);
  const v = new DataView(out.buffer);
  if (prefix > 0) {
    out.set(enc.encode("ld.so-1.7.0"));
    v.setUint32(12, 2, true);
  }
  out.set(enc.encode("glibc-ld.so.cache1.1"), prefix);
  v.setUint32(prefix + 20, entries.length, le);
  v.setUint32(prefix + 24, strs.length, le);
  out[prefix + 28] = le ? 2 : 3;
  v.setUint32(prefix + 32, hw.length > 0 ? extAt : 0, le);
  entries.forEach((e, i) => {
    const at = prefix + 48 + i * 24;
    v.setInt32(at, e.flags ?? 0x303, le);
    v.setUint32(at + 4, keys[i][0], le);
    v.setUint32(at + 8, keys[i][1], le);
    v.setBigUint64(at + 16, e.hwcap ?? 0n, le);
  });
  out.set(strs, prefix + tableEnd);
  if (hw.length > 0) {
    v.setUint32(extAt, 0xeaa42174, le);
    v.setUint32(extAt + 4, 1, le);
    v.setUint32(extAt + 8, 1, le); // glibc-hwcaps section
    v.setUint32(extAt + 16, extAt + 24, le);
    v.setUint32(extAt + 20, hw.length * 4, le);
    hw.forEach((s, i) => v.setUint32(extAt + 24 + i * 4, s, le));
  }
  return out;
}

Deno.test("ld.so.cache layouts: new, old+new, old only, big-endian, hwcaps variants", () => {
  const entries: CacheEntrySpec[] = [
    {
      name: "libfoo.so.1",
      path: "/lib/x/glibc-hwcaps/x86-64-v3/libfoo.so.1",
      hwcap: (1n << 62n) | 0n,
    },
    { name: "libfoo.so.1", path: "/lib/i386/libfoo.so.1", flags: 0x3 },
    { name: "libfoo.so.1", path: "/lib/x/libfoo.so.1" },
    { name: "libbar.so.2", path: "/lib/x/libbar.so.2" },
  ];
  const abi = archAbi(62, 64, 0)!;
  for (const layout of ["new", "old+new"] as const) {
    for (const le of [true, false]) {
      const cache = parseLdCache(buildCache(entries, { le, layout, hwcaps: ["x86-64-v3"] }), "c");
      assert.equal(cache.format, layout);
      assert.deepEqual(cache.hwcapsSubdirs, ["x86-64-v3"]);
      assert.equal(cache.entries[0].hwcapsSubdir, "x86-64-v3");
      assert.deepEqual(lookupLdCache(cache, "libfoo.so.1", abi), {
        path: "/lib/x/libfoo.so.1",
        hwcapsVariants: ["/lib/x/glibc-hwcaps/x86-64-v3/libfoo.so.1"],
      });
      // glibc compares embedded numbers numerically.
      assert.equal(lookupLdCache(cache, "libbar.so.02", abi).path, "/lib/x/libbar.so.2");
      assert.equal(
        lookupLdCache(cache, "libfoo.so.1", archAbi(3, 32, 0)).path,
        "/lib/i386/libfoo.so.1",
      );
    }
  }
  const old = parseLdCache(buildCache(entries.slice(1), { layout: "old" }), "c");
  assert.equal(old.format, "old");
  assert.deepEqual(old.entries.map((e) => e.path), [
    "/lib/i386/libfoo.so.1",
    "/lib/x/libfoo.so.1",
    "/lib/x/libbar.so.2",
  ]);
  // An hwcaps index past the list names nothing: the entry is dropped, as glibc skips it.
  const dangling = parseLdCache(
    buildCache([{ ...entries[0], hwcap: (1n << 62n) | 5n }], { hwcaps: ["v"] }),
    "c",
  );
  assert.deepEqual(dangling.entries, []);
  assert.ok(cacheNameCompare("libx.so.10", "libx.so.9") > 0);
  assert.equal(cacheNameCompare("libx.so.010", "libx.so.10"), 0);
  assert.ok(cacheNameCompare("libx.so", "libx.so.1") < 0);
});

Deno.test("hostile ld.so.cache files give an LdCacheError", () => {
  const good = buildCache([{ name: "liba.so", path: "/a" }], { hwcaps: ["v2"] });
  const bad = (mutate: (b: Uint8Array, v: DataView) => void, pattern: RegExp) => {
    const b = good.slice();
    mutate(b, new DataView(b.buffer));
    assert.throws(() => parseLdCache(b, "cache"), (e: unknown) => {
      assert.ok(e instanceof LdCacheError, String(e));
      assert.match(e.message, pattern);
      return true;
    });
  };
  bad((b) => b.fill(0, 0, 4), /^cache: not an ld.so.cache/);
  assert.throws(() => parseLdCache(good.slice(0, 30), "cache"), /truncated header/);
  bad((_, v) => v.setUint32(20, 0xffffffff, true), /entry count 4294967295 exceeds the file/);
  bad((b) => (b[28] = 1), /marked invalid/);
  bad((_, v) => v.setUint32(48 + 4, 0x7fffffff, true), /string offset .* outside/);
  bad((_, v) => v.setUint32(32, 3, true), /misaligned extension offset/);
  bad((_, v) => v.setUint32(32, 0xfffffff0, true), /extension header past end/);
  bad((_, v) => v.setUint32(v.getUint32(32, true), 1, true), /bad extension magic/);
  bad((_, v) => v.setUint32(v.getUint32(32, true) + 4, 1e9, true), /extension count .* exceeds/);
  bad(
    (_, v) => v.setUint32(v.getUint32(32, true) + 16, 1e9, true),
    /extension section 0 extends past/,
  );
  bad((b, v) => b.fill(0xff, 48 + 24, v.getUint32(32, true)), /not valid UTF-8|unterminated/);
  const noExt = buildCache([{ name: "liba.so", path: "/a" }]);
  assert.throws(
    () => parseLdCache(noExt.slice(0, 48 + 24 + 10), "c"),
    /entry 0 path .* unterminated/,
  );
  const oldBad = buildCache([{ name: "a", path: "/a" }], { layout: "old" });
  new DataView(oldBad.buffer).setUint32(12, 1e6, true);
  assert.throws(() => parseLdCache(oldBad, "c"), /old-format entry count 1000000 exceeds/);
  assert.throws(() => readLdCacheSync("/nonexistent/ld.so.cache"), LdCacheError);
});

/** An in-memory file tree for ld.so.conf tests. */
function memFiles(tree: Record<string, string>): ConfFileAccess {
  return {
    readText: (p) => tree[p] ?? null,
    listDir: (p) => {
      const prefix = p.endsWith("/") ? p : `${p}/`;
      const names = Object.keys(tree).filter((k) => k.startsWith(prefix))
        .map((k) => k.slice(prefix.length).split("/")[0]);
      return names.length ? [...new Set(names)] : null;
    },
  };
}

Deno.test("ld.so.conf: includes, relative globs, comments, =type, hwcap, loops", () => {
  const files = memFiles({
    "/etc/ld.so.conf": "# top\ninclude /etc/ld.so.conf.d/*.conf\n/opt/a/lib/  # trailing\n",
    "/etc/ld.so.conf.d/b.conf": "/b\ninclude sub/?.conf extra.inc\n/b\n",
    "/etc/ld.so.conf.d/a.conf": "  /a \t\n/usr/lib=libc6\nhwcap 1 nosegneg\n",
    "/etc/ld.so.conf.d/.hidden.conf": "/hidden\n",
    "/etc/ld.so.conf.d/c.conf.bak": "/bak\n",
    "/etc/ld.so.conf.d/sub/1.conf": "/sub1\ninclude ../b.conf\n",
    "/etc/ld.so.conf.d/extra.inc": "/extra\n",
  });
  const conf = readLdSoConf("/etc/ld.so.conf", files);
  assert.deepEqual(conf.dirs, ["/a", "/usr/lib", "/b", "/sub1", "/extra", "/opt/a/lib"]);
  assert.deepEqual(conf.files, [
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d/a.conf",
    "/etc/ld.so.conf.d/b.conf",
    "/etc/ld.so.conf.d/sub/1.conf",
    "/etc/ld.so.conf.d/extra.inc",
  ]);
  assert.match(conf.warnings.join("\n"), /include loop through \/etc\/ld.so.conf.d\/b.conf/);
  assert.throws(() => readLdSoConf("/missing", files), LdSoConfError);
  // The host's own file, read for real.
  const host = readLdSoConf("/etc/ld.so.conf");
  assert.ok(host.dirs.includes("/usr/lib/x86_64-linux-gnu"));
  assert.equal(host.files[0], "/etc/ld.so.conf");
});

// ---------------------------------------------------------------------------
// Seeded fuzzing

const INTERESTING = [
  0n,
  1n,
  0x7fn,
  0xffn,
  0xffffn,
  0x7fffffffn,
  0xffffffffn,
  (1n << 53n) - 1n,
  1n << 53n,
  1n << 63n,
  (1n << 64n) - 1n,
];
const TAGS = [0, 1, 5, 10, 14, 15, 29, 0x6ffffffb, 0x6ffffefc, 0x6ffffefb, 0x7ffffffd, 0x7fffffff];

interface FuzzBase {
  name: string;
  bytes: Uint8Array;
  /** Ranges the parser reads: header, program headers, dynamic array, strings. */
  hot: [number, number][];
  dynOff: number;
  is64: boolean;
}

function fuzzBase(name: string, bytes: Uint8Array): FuzzBase {
  const info = parseElf(bytes, name);
  const is64 = info.elfClass === 64;
  const hot: [number, number][] = [[0, is64 ? 64 : 52]];
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const phoff = is64
    ? Number(v.getBigUint64(32, info.littleEndian))
    : v.getUint32(28, info.littleEndian);
  hot.push([phoff, phoff + info.programHeaders.length * (is64 ? 56 : 32)]);
  const dyn = info.programHeaders.find((p) => p.type === 2)!;
  hot.push([dyn.offset, dyn.offset + dyn.filesz]);
  const interp = info.programHeaders.find((p) => p.type === 3);
  if (interp) hot.push([interp.offset, interp.offset + interp.filesz]);
  // The string table, found through DT_STRTAB and the PT_LOAD that maps it.
  for (let at = dyn.offset; at < dyn.offset + dyn.filesz; at += is64 ? 16 : 8) {
    const tag = is64
      ? Number(v.getBigUint64(at, info.littleEndian))
      : v.getUint32(at, info.littleEndian);
    if (tag !== 5) continue;
    const addr = is64
      ? Number(v.getBigUint64(at + 8, info.littleEndian))
      : v.getUint32(at + 4, info.littleEndian);
    const load = info.programHeaders.find((p) =>
      p.type === 1 && addr >= p.vaddr && addr < p.vaddr + p.filesz
    )!;
    const off = load.offset + addr - load.vaddr;
    hot.push([off, Math.min(bytes.length, off + 2048)]);
  }
  return { name, bytes, hot, dynOff: dyn.offset, is64 };
}

/** One mutated copy of a base file. */
function mutate(rng: Rng, base: FuzzBase): Uint8Array {
  let b = base.bytes.slice();
  const hotOffset = () => {
    const [s, e] = rng.pick(base.hot);
    return s + rng.int(Math.max(1, e - s));
  };
  const anyOffset = () => (rng.int(10) < 8 ? hotOffset() : rng.int(b.length));
  const rounds = 1 + rng.int(3);
  for (let r = 0; r < rounds; r++) {
    const v = new DataView(b.buffer);
    switch (rng.int(6)) {
      case 0: { // bit flips
        for (let n = 1 + rng.int(8); n > 0; n--) {
          const at = anyOffset();
          if (at < b.length) b[at] ^= 1 << rng.int(8);
        }
        break;
      }
      case 1: { // an interesting value in a field
        const at = hotOffset() & ~3;
        const x = rng.int(4) === 0 ? BigInt(rng.uint32()) : rng.pick(INTERESTING);
        const y = rng.int(3) === 0 ? BigInt(b.length + rng.int(3) - 1) : x;
        if (base.is64 && at + 8 <= b.length) v.setBigUint64(at, y & ((1n << 64n) - 1n), true);
        else if (at + 4 <= b.length) v.setUint32(at, Number(y & 0xffffffffn), true);
        break;
      }
      case 2: { // truncation, mostly inside what the parser reads
        const cut = rng.int(2) === 0 ? hotOffset() : rng.int(b.length + 1);
        b = b.slice(0, cut);
        break;
      }
      case 3: { // a dynamic entry retagged
        const entsize = base.is64 ? 16 : 8;
        const at = base.dynOff + entsize * rng.int(30);
        if (at + entsize > b.length) break;
        if (base.is64) {
          v.setBigUint64(at, BigInt(rng.pick(TAGS)), true);
          if (rng.int(2)) {
            v.setBigUint64(at + 8, rng.pick(INTERESTING) & ((1n << 64n) - 1n), true);
          }
        } else {
          v.setUint32(at, rng.pick(TAGS), true);
          if (rng.int(2)) v.setUint32(at + 4, rng.uint32(), true);
        }
        break;
      }
      case 4: { // one program header copied over another
        const [s, e] = base.hot[1];
        const size = base.is64 ? 56 : 32;
        const n = Math.floor((e - s) / size);
        if (n < 2 || e > b.length) break;
        b.copyWithin(
          s + size * rng.int(n),
          s + size * rng.int(n),
          s + size * rng.int(n) + size,
        );
        break;
      }
      default: { // random bytes over a hot region
        const at = hotOffset();
        for (let k = 0; k < 1 + rng.int(16) && at + k < b.length; k++) b[at + k] = rng.int(256);
      }
    }
  }
  return b;
}

/** Runs `fn`; only the typed errors in `allowed` may escape it. Returns the case's time. */
function expectTypedOnly(
  label: string,
  fn: () => unknown,
  allowed: (abstract new (...args: never[]) => Error)[],
): number {
  const t0 = performance.now();
  try {
    fn();
  } catch (e) {
    if (!allowed.some((cls) => e instanceof cls)) {
      throw new Error(`${label}: untyped ${e instanceof Error ? e.stack : String(e)}`);
    }
  }
  return performance.now() - t0;
}

Deno.test("fuzz: 4000 mutated ELF files give only ElfError, each fast", async () => {
  const bases = [
    fuzzBase("/bin/ls", Deno.readFileSync("/bin/ls")),
    fuzzBase("libz", Deno.readFileSync(Deno.realPathSync("/usr/lib/x86_64-linux-gnu/libz.so.1"))),
    fuzzBase(
      "crafted64",
      buildElf({ needed: ["a.so", "b.so"], runpath: "$ORIGIN", soname: "s" }).bytes,
    ),
    fuzzBase("crafted32be", buildElf({ cls: 32, le: false, needed: ["a"], rpath: "/r" }).bytes),
  ];
  const rng = new Rng(testSeed(0x5eed1234));
  let worst = 0;
  let parsed = 0;
  for (let i = 0; i < 4000; i++) {
    const base = bases[i % bases.length];
    const bytes = mutate(rng, base);
    const ms = expectTypedOnly(`case ${i} (${base.name})`, () => {
      parseElf(bytes, "fuzz");
      parsed++;
    }, [ElfError]);
    worst = Math.max(worst, ms);
  }
  // The same through the file reader (pread, pages), on a sample.
  const dir = await Deno.makeTempDir({ prefix: "jk-fuzz-" });
  try {
    for (let i = 0; i < 300; i++) {
      const bytes = mutate(rng, bases[i % bases.length]);
      Deno.writeFileSync(`${dir}/f`, bytes);
      let viaBytes: unknown;
      try {
        viaBytes = parseElf(bytes, `${dir}/f`);
      } catch (e) {
        viaBytes = (e as Error).message;
      }
      let viaFile: unknown;
      worst = Math.max(
        worst,
        expectTypedOnly(`file case ${i}`, () => {
          try {
            viaFile = readElfFileSync(`${dir}/f`);
          } catch (e) {
            viaFile = (e as Error).message;
            throw e;
          }
        }, [ElfError]),
      );
      // Both readers must agree exactly, error or result.
      if (typeof viaBytes === "string" && /not an ELF file/.test(viaBytes)) continue;
      assert.deepEqual(viaFile, viaBytes, `file case ${i}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  console.log(`  ${parsed} of 4000 mutants still parsed; slowest case ${worst.toFixed(1)} ms`);
  assert.ok(worst < 100, `slowest case took ${worst} ms`);
});

Deno.test("fuzz: 2000 mutated ld.so.caches give only LdCacheError", () => {
  const real = Deno.readFileSync("/etc/ld.so.cache");
  const crafted = buildCache(
    [{ name: "liba.so.1", path: "/a", hwcap: 1n << 62n }, { name: "liba.so.1", path: "/b" }],
    { hwcaps: ["x86-64-v2"], layout: "old+new" },
  );
  const rng = new Rng(testSeed(0xcace));
  let worst = 0;
  for (let i = 0; i < 2000; i++) {
    const base = i % 2 === 0 ? real : crafted;
    let b = base.slice();
    const v = new DataView(b.buffer);
    const hot = () => (rng.int(4) === 0 ? rng.int(b.length) : rng.int(Math.min(b.length, 200)));
    switch (rng.int(4)) {
      case 0:
        for (let n = 1 + rng.int(8); n > 0; n--) b[hot()] ^= 1 << rng.int(8);
        break;
      case 1: {
        const at = hot() & ~3;
        if (at + 4 <= b.length) {
          v.setUint32(at, rng.int(3) ? rng.uint32() : b.length - rng.int(8), true);
        }
        break;
      }
      case 2:
        b = b.slice(0, rng.int(b.length + 1));
        break;
      default: { // the extension directory
        const ext = v.getUint32(32, true);
        const at = (ext + rng.int(40)) & ~3;
        if (at + 4 <= b.length) v.setUint32(at, rng.uint32(), true);
      }
    }
    worst = Math.max(
      worst,
      expectTypedOnly(`cache case ${i}`, () => parseLdCache(b, "fuzz"), [LdCacheError]),
    );
  }
  assert.ok(worst < 100, `slowest case took ${worst} ms`);
});

Deno.test("fuzz: random #! lines and ld.so.conf texts never throw untyped errors", () => {
  const rng = new Rng(testSeed(77));
  const alphabet = [..."#! \t\n\0/abc.*?[]-=include hwcap"].map((c) => c.charCodeAt(0));
  for (let i = 0; i < 1500; i++) {
    const len = rng.int(400);
    const bytes = new Uint8Array(len).map(() => rng.int(3) ? rng.pick(alphabet) : rng.int(256));
    if (i % 2 === 0 && len >= 2) bytes.set([0x23, 0x21]);
    expectTypedOnly(`shebang case ${i}`, () => readShebang(bytes), []);
    const text = new TextDecoder().decode(bytes);
    const files = memFiles({
      "/c": text,
      "/d/x.conf": `include /d/*.conf\n${text}`,
      "/d/y.conf": "include ../c\n/y\n",
    });
    expectTypedOnly(
      `conf case ${i}`,
      () => readLdSoConf(rng.int(2) ? "/c" : "/d/x.conf", files),
      [
        LdSoConfError,
      ],
    );
  }
});
