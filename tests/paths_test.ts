/** src/paths.ts gives node:path's results (node:path is the oracle here). */
import assert from "node:assert/strict";
import * as node from "node:path";
import { basename, dirname, isAbsolute, join, normalize, resolve } from "../src/paths.ts";
import { Rng, testSeed } from "./harness.ts";

const PIECES = ["", "/", "//", ".", "..", "a", "bc", ".x", "x.", "...", "lib", "usr"];

function randomPath(rng: Rng): string {
  let p = "";
  const n = rng.int(8);
  for (let i = 0; i < n; i++) p += rng.pick(PIECES) + (rng.chance(0.7) ? "/" : "");
  return p;
}

Deno.test("paths: normalize, join, dirname, basename, isAbsolute, resolve agree with node:path", () => {
  const rng = new Rng(testSeed(20261129));
  for (let i = 0; i < 20000; i++) {
    const a = randomPath(rng), b = randomPath(rng), c = randomPath(rng);
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
