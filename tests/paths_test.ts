/** src/paths.ts gives node:path's results (node:path is the oracle here). */
import assert from "node:assert/strict";
import * as node from "node:path";
import { basename, dirname, isAbsolute, join, normalize, resolve } from "../src/paths.ts";

/** Small seeded PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ["", "/", "//", ".", "..", "a", "bc", ".x", "x.", "...", "lib", "usr"];

function randomPath(next: () => number): string {
  let p = "";
  const n = Math.floor(next() * 8);
  for (let i = 0; i < n; i++) {
    p += PIECES[Math.floor(next() * PIECES.length)] + (next() < 0.7 ? "/" : "");
  }
  return p;
}

Deno.test("paths: normalize, join, dirname, basename, isAbsolute, resolve agree with node:path", () => {
  const next = rng(20261129);
  for (let i = 0; i < 20000; i++) {
    const a = randomPath(next), b = randomPath(next), c = randomPath(next);
    assert.equal(normalize(a), node.normalize(a), `normalize(${JSON.stringify(a)})`);
    assert.equal(join(a, b, c), node.join(a, b, c), `join(${JSON.stringify([a, b, c])})`);
    assert.equal(dirname(a), node.dirname(a), `dirname(${JSON.stringify(a)})`);
    assert.equal(basename(a), node.basename(a), `basename(${JSON.stringify(a)})`);
    assert.equal(isAbsolute(a), node.isAbsolute(a));
    assert.equal(resolve(a, b), node.resolve(a, b), `resolve(${JSON.stringify([a, b])})`);
  }
});

Deno.test("paths: the cases the tools rely on", () => {
  assert.equal(join("/home/jail", "../etc", "passwd"), "/home/etc/passwd");
  assert.equal(normalize("/srv//jail/./etc/../lib/"), "/srv/jail/lib/");
  assert.equal(dirname("/"), "/");
  assert.equal(basename("/usr/sbin/jk_lsh"), "jk_lsh");
  assert.equal(join(), ".");
});
