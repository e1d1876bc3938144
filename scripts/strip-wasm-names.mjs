// Drops the custom `name` section (function names for stack traces) from a wasm file in
// place. worker-build always keeps it; it is ~290 KB of the edge's ~2.4 MB and ~80 KB of its
// gzip size, and workerd needs none of it to run. A panic still reports its message (the
// edge installs a panic hook); only the frame names in a wasm stack trace become indices.
// Usage: node scripts/strip-wasm-names.mjs FILE.wasm
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const file = process.argv[2];
const wasm = readFileSync(file);
if (wasm.readUInt32LE(0) !== 0x6d736100) throw new Error(`${file}: not a wasm module`);

/** Reads an unsigned LEB128 at `at`; returns [value, next offset]. */
function leb(at) {
  let value = 0, shift = 0, byte;
  do {
    byte = wasm[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}

const kept = [wasm.subarray(0, 8)];
let dropped = 0;
for (let at = 8; at < wasm.length;) {
  const start = at;
  const id = wasm[at];
  const [size, body] = leb(at + 1);
  const end = body + size;
  let drop = false;
  if (id === 0) {
    const [len, nameAt] = leb(body);
    drop = wasm.toString('utf8', nameAt, nameAt + len) === 'name';
  }
  if (drop) dropped += end - start;
  else kept.push(wasm.subarray(start, end));
  at = end;
}
if (dropped > 0) {
  writeFileSync(`${file}.tmp`, Buffer.concat(kept));
  renameSync(`${file}.tmp`, file);
}
console.log(`${file}: name section ${dropped} B dropped`);
