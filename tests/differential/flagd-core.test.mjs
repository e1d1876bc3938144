// Differential test: the `edgeflags` CLI (Rust core, shared/) against the reference
// evaluator @openfeature/flagd-core (4.0.1, the npm package used by flagd's JS providers).
//
//   cargo build --release -p edgeflags-cli && node --test tests/differential/
//
// Env: EDGEFLAGS_CLI (default target/release/edgeflags), DIFF_SEED (default 0x5eed2025),
// DIFF_SETS (number of generated flag sets, default 400), DIFF_CONTEXTS (contexts per
// set, default 4). Keep the defaults for CI: the run is deterministic.
//
// A seeded PRNG generates flag sets (static flags of each variant type, DISABLED flags,
// missing/null defaultVariant, `{}` targeting, if/==/!=/</>/<=/>=/between, `in` on strings
// and arrays, and/or/!, `var` with dotted paths and defaults, starts_with/ends_with,
// sem_ver with every operator and with partial versions ("1", "1.2", "v2.0") and numbers
// from the context (1.2, 2), fractional with 1–4 buckets — negative and zero weights,
// single-entry rules, variant names and weights that are nested `if`/`var` expressions,
// default, custom and non-string (number, boolean) bucketing values —
// `$evaluators`/`$ref`, `$flagd.flagKey`, `$flagd.timestamp`) and contexts. Most sets also
// hold broken flags, as real files do: a `$ref` to a missing evaluator, an unknown
// operator (at the top or nested deep), a `$ref` to an evaluator that itself uses an
// unknown operator — enabled or disabled. flagd and flagd-core keep such a flag and answer
// PARSE_ERROR for it; every other flag of the file must still agree.
// Every (flag set, context) is evaluated by both implementations in bulk; value, variant,
// reason, metadata (flag-set metadata overlaid with the flag's) and error code must agree
// for every flag. A smaller test checks single-flag mode (--flag) and FLAG_NOT_FOUND.
// The run prints how many flag evaluations agree; DIFF_REPORT_ONLY=1 turns disagreements
// into that report instead of a failure (to measure another binary, e.g. an old build).
//
// How flagd-core is driven: for each flag, a DISABLED state gives reason DISABLED (no
// value), otherwise `FeatureFlag.evaluate(ctx)` gives the raw resolution: a thrown
// targeting error becomes reason ERROR/GENERAL, a null targeting result DEFAULT, a
// fractional match TARGETING_MATCH. A resolution without a value (no default variant)
// is compared with an OFREP item without value/variant. flagd-core reads the clock for
// `$flagd.timestamp` (Date.now()); the test pins Date.now() to the same instant that it
// passes to the CLI as --now, so timestamp rules can use exact thresholds.
//
// Shapes kept out of the generator, because flagd-core deviates from flagd (Go), which
// is the standard edgeflags follows (see shared/FLAGD-NOTES.md):
//  - Non-ASCII bucketing keys: flagd-core hashes UTF-16 code units, flagd UTF-8 bytes.
//    targetingKeys and every string that can become a bucketing key are printable ASCII.
//  - An empty targetingKey: flagd-core treats "" as missing (no fractional match), flagd
//    buckets on flagKey + "". Generated targetingKeys are non-empty or absent.
//  - `null == 0` / `null == false` (true in flagd-core's JsonLogic engine) and comparing a
//    string with a number (throws there): `==`/`!=` never compare with 0, false or "",
//    ordering operators compare numbers with numbers and strings with strings, and no context
//    attribute changes type between contexts.
//  - Ordering operators on non-ASCII strings (JavaScript compares UTF-16 code units, Go
//    bytes): ordered strings are ASCII.
//  - `cat` of a missing value ("null" in one engine mode, "" in the other): a custom
//    bucketing expression only reads attributes that every context of its set carries.
//  - A custom bucketing expression that evaluates to null: flagd falls back to the
//    targetingKey, flagd-core treats the null as a malformed bucket (no match). Same guard.
//  - `$$`/`$&` in `$evaluators` bodies (mangled by flagd-core's string replacement): no
//    generated string contains `$` except the `$flagd.` var paths; evaluators do not
//    reference other evaluators.
//  - Fractional with every weight 0 (or ≤ 0): flagd returns "" (an invalid variant →
//    error), flagd-core null (DEFAULT). At least one weight per rule is positive.
//  - A null weight ([name, null]): flagd reads weight 1, flagd-core refuses the bucket. A
//    bucket with more than two elements: flagd ignores the rest, flagd-core refuses it.
//    Not generated; computed weights only read attributes every context carries.
//  - `var` with a default over an explicit null: flagd serves the default; flagd-core does
//    in its compiled JsonLogic mode, except inside a two-argument `if` ({"if":[cond, x]}),
//    which it evaluates through the interpreter, where the null is kept (its interpreter
//    mode, `disableDynamicCodeGeneration`, never applies the default). Contexts do carry
//    explicit nulls, but conditions of two-argument `if`s and `$evaluators` bodies use
//    `var` without defaults.
//  - Targeting results that are arrays (flagd-core names the variant by Array#toString), and
//    arrays or booleans as sem_ver operands (flagd-core reads String(x), so [1] is "1"):
//    not generated. Numbers are: both read 1.2 as "1.2" (flagd-testbed @semver-numeric-context).
//  - Partial versions with leading zeros ("01.2"): flagd-core coerces them, Go's semver
//    refuses them. Not generated.
//  - A defaultVariant that names no variant, or a state other than ENABLED/DISABLED:
//    flagd-core refuses the whole file; edgeflags keeps the flag as PARSE_ERROR (and warns
//    about the state). Not generated: only targeting breaks flags here.
// Non-string bucketing values (a number or boolean from the context) are generated: flagd
// (Go, bucketing v2) and flagd-core both treat such a value as a malformed first bucket and
// the rule evaluates to null, which edgeflags follows (stringifying would be the CBOR-based
// "v3" hashing that flagd has not adopted for v2).
// Not an exclusion, but a known difference between the references: for a targeting result
// that names no variant, flagd (Go) reports PARSE_ERROR and flagd-core GENERAL; edgeflags
// says GENERAL, and the comparison includes the error code.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { FlagdCore } from '@openfeature/flagd-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = process.env.EDGEFLAGS_CLI
  ? resolve(process.env.EDGEFLAGS_CLI)
  : join(ROOT, 'target/release/edgeflags');
const SEED = Number(process.env.DIFF_SEED ?? 0x5eed2025) >>> 0;
const SETS = Number(process.env.DIFF_SETS ?? 400);
const CONTEXTS = Number(process.env.DIFF_CONTEXTS ?? 4);
const NOW = 1764892800; // 2025-12-05T00:00:00Z, passed as --now and pinned as Date.now()
const CONCURRENCY = 4;
const SHOW = 5; // differing cases printed in full

// ---------------------------------------------------------------------------------------
// PRNG (sfc32 seeded through splitmix32): deterministic across Node versions.

function rng(seed) {
  let s = seed >>> 0;
  const split = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  const r = {
    float: next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    chance: (p) => next() < p,
    pick: (arr) => arr[Math.floor(next() * arr.length)],
    weighted: (pairs) => {
      // pairs: [[weight, value], ...]
      const total = pairs.reduce((s, [w]) => s + w, 0);
      let x = next() * total;
      for (const [w, v] of pairs) {
        if ((x -= w) < 0) return v;
      }
      return pairs[pairs.length - 1][1];
    },
    subset: (arr, max = arr.length) => {
      const n = Math.floor(next() * (max + 1));
      const copy = [...arr];
      const out = [];
      for (let i = 0; i < n && copy.length; i++) out.push(copy.splice(Math.floor(next() * copy.length), 1)[0]);
      return out;
    },
  };
  return r;
}

// ---------------------------------------------------------------------------------------
// Context vocabulary. Each attribute has one type in every context (see the exclusions).

const DOMAINS = ['example.com', 'acme.io', 'corp.example.com', 'gmail.com', 'test.dev'];
const NAMES = ['ann', 'bob', 'carla', 'dmitri', 'eve', 'fatima', 'gus', 'hiro', 'x', 'qa+1'];
const PLANS = ['free', 'pro', 'team', 'enterprise'];
const COUNTRIES = ['DE', 'US', 'FR', 'JP', 'BR', 'IN'];
const TAGS = ['beta', 'staff', 'vip', 'early', 'mobile'];
const ORGS = ['acme', 'globex', 'initech', 'umbrella'];
// Non-ASCII strings, only for equality, in, starts_with and ends_with (never ordered or hashed).
const CITIES = ['Zürich', 'São Paulo', '東京', 'Kraków', 'Berlin', '🚀 base'];
const KEY_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@/+= ~!*()';
const VERSIONS = [
  '0.0.1', '0.9.0', '1.0.0', '1.0.1', '1.2.3', '1.2.10', '1.10.0', '2.0.0', '2.0.0-alpha.1',
  '2.0.0-beta', '2.0.0-rc.1', '2.1.0', '2.3.1', '3.0.0', '3.0.0+build.7', '10.0.0', '1.2.3-0',
];
// Partial versions (read as X.0.0 / X.Y.0), in rules and in contexts.
const PARTIAL_VERSIONS = ['1', '2', '1.2', '1.10', '2.0', 'v2', 'V1.2', '0.9', '10'];
// A numeric context attribute compared with sem_ver (flagd reads 1.2 as "1.2").
const BUILDS = [1, 2, 1.2, 1.1, 2.5, 0.9, 10, 3];

// Context scores; some name variants of the 'score-named' flags, so they include numbers
// whose JavaScript/JSON rendering uses exponents.
const SCORES = [0, 0.25, 0.5, 0.75, 1.5, 2, 42.125, 99.5, -3, 123456789.5, 1e21, 1e-7];
const STRING_ATTRS = ['email', 'plan', 'country', 'targetingKey', 'user.org.name', 'user.country', 'city'];
const NUMBER_ATTRS = ['age', 'score', 'user.id', 'user.org.tier'];
// Plausible literals per attribute, so comparisons match often enough.
const STRING_LITERALS = {
  email: () => `${NAMES[0]}@${DOMAINS[0]}`,
  plan: (r) => r.pick(PLANS),
  country: (r) => r.pick(COUNTRIES),
  targetingKey: (r) => r.pick(['user-1', 'user-2', 'admin', 'k']),
  'user.org.name': (r) => r.pick(ORGS),
  'user.country': (r) => r.pick(COUNTRIES),
  city: (r) => r.pick(CITIES),
};
const PREFIXES = {
  email: (r) => r.pick(NAMES.map((n) => n.slice(0, 2)).concat(['a', 'qa', 'zz'])),
  plan: (r) => r.pick(['f', 'pr', 'te', 'ent', 'x']),
  country: (r) => r.pick(['D', 'U', 'J', 'Z']),
  targetingKey: (r) => r.pick(['user', 'u', 'A', 'k', '0']),
  'user.org.name': (r) => r.pick(['ac', 'glo', 'i', 'um', 'z']),
  'user.country': (r) => r.pick(['D', 'U', 'J', 'Z']),
  city: (r) => r.pick(['Zü', 'Z', 'São', '東', '🚀', 'B']),
};
const SUFFIXES = {
  email: (r) => r.pick(DOMAINS.map((d) => '@' + d).concat(['.com', '.io', 'example.com', '.org'])),
  plan: (r) => r.pick(['ree', 'o', 'am', 'prise', 'x']),
  country: (r) => r.pick(['E', 'S', 'P', 'Z']),
  targetingKey: (r) => r.pick(['1', '7', 'a', 'x', '-']),
  'user.org.name': (r) => r.pick(['me', 'ex', 'tech', 'lla', 'q']),
  'user.country': (r) => r.pick(['E', 'S', 'P', 'Z']),
  city: (r) => r.pick(['rich', 'ü', 'Paulo', '京', 'ków', ' base', 'n']),
};
const NUMBER_LITERALS = {
  age: (r) => r.int(1, 99),
  score: (r) => r.pick([0.25, 0.5, 0.75, 1.5, 2, 99.5, 1e-7, 1e21]),
  'user.id': (r) => r.int(1, 1000),
  'user.org.tier': (r) => r.int(1, 3),
};

function asciiKey(r) {
  const n = r.int(1, 24);
  let s = r.chance(0.5) ? 'user-' : '';
  for (let i = 0; i < n; i++) s += r.pick(KEY_CHARS);
  return s;
}

/** A context; `required` lists dotted attributes every context of the set must carry. */
function genContext(r, required) {
  const need = (a) => required.has(a);
  const ctx = {};
  if (need('targetingKey') || r.chance(0.85)) ctx.targetingKey = asciiKey(r);
  if (need('email') || r.chance(0.8)) ctx.email = `${r.pick(NAMES)}${r.chance(0.3) ? r.int(1, 99) : ''}@${r.pick(DOMAINS)}`;
  if (need('appVersion') || r.chance(0.75)) ctx.appVersion = r.chance(0.2) ? r.pick(PARTIAL_VERSIONS) : r.pick(VERSIONS);
  if (need('build') || r.chance(0.6)) ctx.build = r.pick(BUILDS);
  if (need('age') || r.chance(0.7)) ctx.age = r.int(0, 99);
  if (need('score') || r.chance(0.4)) ctx.score = r.pick(SCORES);
  if (need('plan') || r.chance(0.7)) ctx.plan = r.pick(PLANS);
  if (need('country') || r.chance(0.5)) ctx.country = r.pick(COUNTRIES);
  if (r.chance(0.4)) ctx.city = r.pick(CITIES);
  if (need('beta') || r.chance(0.5)) ctx.beta = r.chance(0.5);
  if (need('tags') || r.chance(0.5)) ctx.tags = r.subset(TAGS, 3);
  const needUser = [...required].some((a) => a.startsWith('user.'));
  if (needUser || r.chance(0.6)) {
    ctx.user = { id: r.int(1, 1000) };
    if (need('user.country') || r.chance(0.6)) ctx.user.country = r.pick(COUNTRIES);
    if (need('user.org.name') || need('user.org.tier') || r.chance(0.7)) {
      ctx.user.org = { name: r.pick(ORGS), tier: r.int(1, 3) };
    } else if (r.chance(0.5)) {
      ctx.user.org = r.chance(0.6) ? {} : null; // an empty object is falsy in flagd's JsonLogic
    }
  }
  // A caller-supplied `$flagd` is replaced by the evaluator's own (flag key, time).
  if (r.chance(0.03)) ctx.$flagd = { flagKey: 'spoofed', timestamp: 1 };
  // Explicit nulls (same as missing, except that `var` then serves its default).
  for (const a of ['email', 'plan', 'country', 'age', 'appVersion', 'tags']) {
    if (!need(a) && r.chance(0.04)) ctx[a] = null;
  }
  return ctx;
}

// ---------------------------------------------------------------------------------------
// Targeting generator.

const variable = (r, g, path) => {
  // `var` with a default only where the default has the attribute's own type, and not
  // where flagd-core would ignore it for an explicit null (see the exclusions).
  if (!g.noVarDefault && r.chance(0.12)) {
    if (STRING_ATTRS.includes(path)) return { var: [path, STRING_LITERALS[path](r)] };
    if (NUMBER_ATTRS.includes(path)) return { var: [path, NUMBER_LITERALS[path](r)] };
  }
  return { var: path };
};

/** A boolean-ish condition. `g` carries the generation state of the current flag. */
function condition(r, g, depth = 0) {
  const kinds = [
    [6, 'eq'], [3, 'ne'], [6, 'cmp'], [1, 'between'], [4, 'in_str'], [4, 'in_arr'], [3, 'in_tags'],
    [4, 'starts'], [4, 'ends'], [6, 'semver'], [2, 'timestamp'], [2, 'flagkey'], [3, 'truthy'],
    [1, 'var_eq_var'], [1, 'in_num'], [2, 'cmp_str'],
  ];
  if (depth < 2) kinds.push([4, 'and'], [4, 'or'], [3, 'not']);
  if (depth < 2 && g.evaluators.length) kinds.push([3, 'ref']);
  switch (r.weighted(kinds)) {
    case 'eq':
    case 'ne': {
      const op = r.chance(0.5) ? '==' : '!=';
      if (r.chance(0.65)) {
        const a = r.pick(STRING_ATTRS);
        return { [op]: r.chance(0.5) ? [variable(r, g, a), STRING_LITERALS[a](r)] : [STRING_LITERALS[a](r), variable(r, g, a)] };
      }
      if (r.chance(0.8)) {
        const a = r.pick(NUMBER_ATTRS);
        return { [op]: [variable(r, g, a), NUMBER_LITERALS[a](r)] }; // literals are never 0
      }
      return { [op]: [{ var: 'beta' }, true] };
    }
    case 'cmp': {
      const a = r.pick(NUMBER_ATTRS);
      const op = r.pick(['<', '>', '<=', '>=']);
      return { [op]: r.chance(0.7) ? [variable(r, g, a), NUMBER_LITERALS[a](r)] : [NUMBER_LITERALS[a](r), variable(r, g, a)] };
    }
    case 'cmp_str': {
      const a = r.pick(['plan', 'country', 'user.org.name', 'email']);
      const op = r.pick(['<', '>', '<=', '>=']);
      return { [op]: r.chance(0.7) ? [variable(r, g, a), STRING_LITERALS[a](r)] : [STRING_LITERALS[a](r), variable(r, g, a)] };
    }
    case 'between': {
      const a = r.pick(['age', 'user.id']);
      const lo = NUMBER_LITERALS[a](r);
      const hi = lo + r.int(0, 60);
      return { [r.pick(['<', '<='])]: [lo, { var: a }, hi] };
    }
    case 'in_str': {
      const a = r.pick(['email', 'plan', 'targetingKey', 'user.org.name', 'city']);
      return { in: [r.chance(0.5) ? PREFIXES[a](r) : SUFFIXES[a](r), variable(r, g, a)] };
    }
    case 'in_arr': {
      const a = r.pick(['plan', 'country', 'user.org.name', 'user.country']);
      const pool = a === 'plan' ? PLANS : a === 'user.org.name' ? ORGS : COUNTRIES;
      const list = r.subset(pool, 3);
      if (r.chance(0.2)) list.push('zz-none');
      return { in: [variable(r, g, a), list] };
    }
    case 'in_tags':
      return { in: [r.pick(TAGS.concat(['none'])), { var: 'tags' }] };
    case 'starts':
    case 'ends': {
      const a = r.pick(STRING_ATTRS);
      const op = r.chance(0.5) ? 'starts_with' : 'ends_with';
      return { [op]: [variable(r, g, a), op === 'starts_with' ? PREFIXES[a](r) : SUFFIXES[a](r)] };
    }
    case 'semver': {
      const op = r.pick(['=', '!=', '<', '<=', '>', '>=', '^', '~']);
      const lit = r.chance(0.3) ? r.pick(PARTIAL_VERSIONS) : r.pick(VERSIONS);
      const attr = r.chance(0.25) ? 'build' : 'appVersion';
      if (attr === 'build') (g.features ??= new Set()).add('semver-number');
      if (PARTIAL_VERSIONS.includes(lit)) (g.features ??= new Set()).add('semver-partial');
      return { sem_ver: r.chance(0.85) ? [{ var: attr }, op, lit] : [lit, op, { var: attr }] };
    }
    case 'timestamp': {
      const delta = r.pick([-31536000, -86400, -1, 0, 1, 86400, 31536000]);
      const op = r.pick(['<', '>', '<=', '>=', '==', '!=']);
      return { [op]: [{ var: '$flagd.timestamp' }, NOW + delta] };
    }
    case 'flagkey': {
      const lit = r.chance(0.5) ? g.key : r.pick(['other-flag', g.key.slice(0, 3)]);
      if (r.chance(0.5)) return { '==': [{ var: '$flagd.flagKey' }, lit] };
      return { starts_with: [{ var: '$flagd.flagKey' }, g.key.slice(0, r.int(1, 4))] };
    }
    case 'truthy': {
      const a = r.pick(['beta', 'tags', 'plan', 'age', 'user.org', 'user', 'score']);
      return r.weighted([[2, () => ({ var: a })], [2, () => ({ '!': [{ var: a }] })], [2, () => ({ '!!': [{ var: a }] })]])();
    }
    case 'var_eq_var':
      return { [r.pick(['==', '!='])]: r.chance(0.5) ? [{ var: 'country' }, { var: 'user.country' }] : [{ var: 'user.id' }, { var: 'user.org.tier' }] }; // never 0 (null == 0)
    case 'in_num':
      return { in: [{ var: r.pick(['user.org.tier', 'age']) }, r.subset([1, 2, 3, 18, 42], 3)] };
    case 'and':
    case 'or': {
      const op = r.chance(0.5) ? 'and' : 'or';
      const n = r.int(2, 3);
      return { [op]: Array.from({ length: n }, () => condition(r, g, depth + 1)) };
    }
    case 'not':
      return r.chance(0.5) ? { '!': [condition(r, g, depth + 1)] } : { '!': condition(r, g, depth + 1) };
    case 'ref':
      return { $ref: r.pick(g.evaluators) };
    default:
      throw new Error('unreachable');
  }
}

/** A variant-name result: usually an existing variant, sometimes null or an unknown name. */
function outcome(r, g) {
  return r.weighted([[20, () => r.pick(g.names)], [1.5, () => null], [0.7, () => 'no-such-variant']])();
}

const feature = (g, name) => (g.features ??= new Set()).add(name);
// Marks a set whose contexts must all carry its required attributes (no empty context).
const NO_EMPTY_CONTEXT = '!no-empty-context';

/** A bucket's variant name: a literal, or (nested) an `if` choosing between two names or a
 * `var` reading the plan (which names a variant of the 'var-named' flags only). */
function bucketName(r, g) {
  if (r.chance(0.12)) {
    feature(g, 'fractional-nested');
    if (r.chance(0.75)) return { if: [condition(r, { ...g, noVarDefault: true }, 2), r.pick(g.names), r.pick(g.names)] };
    g.required.add('plan');
    return { var: 'plan' };
  }
  return r.chance(0.97) ? r.pick(g.names) : 'no-such-variant';
}

/** A bucket's weight: mostly a literal (sometimes 0 or negative, which counts as 0), or
 * (nested) an expression computing one. */
function bucketWeight(r, g) {
  const x = r.float();
  if (x < 0.1) {
    feature(g, 'fractional-nested');
    return { if: [condition(r, { ...g, noVarDefault: true }, 2), r.int(-20, 100), r.int(0, 100)] };
  }
  if (x < 0.14) {
    feature(g, 'fractional-nested');
    g.required.add('age');
    g.required.add(NO_EMPTY_CONTEXT); // a missing weight: flagd reads 1, flagd-core refuses
    return r.chance(0.5) ? { var: 'age' } : { '-': [50, { var: 'age' }] }; // may be negative
  }
  if (x < 0.24) {
    feature(g, 'fractional-negative-weight');
    return -r.int(1, 100);
  }
  return r.chance(0.15) ? 0 : r.int(1, 100);
}

function fractional(r, g) {
  const n = r.chance(0.15) ? 1 : r.int(2, 4);
  if (n === 1) feature(g, 'fractional-single');
  const buckets = [];
  for (let i = 0; i < n; i++) {
    const name = bucketName(r, g);
    buckets.push(r.chance(0.05) ? [name] : [name, bucketWeight(r, g)]);
  }
  // At least one literal positive weight (see the exclusions).
  if (!buckets.some((b) => b.length === 1 || (typeof b[1] === 'number' && b[1] > 0))) buckets[r.int(0, n - 1)][1] = r.int(1, 100);
  const custom = r.weighted([[6, null], [2, 'cat-email'], [1, 'email'], [1, 'cat-key'], [1, 'literal'], [1.2, 'non-string']]);
  switch (custom) {
    case 'non-string': {
      // A number or boolean as the bucketing value (every context carries it).
      feature(g, 'fractional-non-string-key');
      const a = r.pick(['age', 'beta', 'user.org.tier']);
      g.required.add(a);
      return { fractional: [{ var: a }, ...buckets] };
    }
    case null:
      return { fractional: buckets };
    case 'cat-email':
      g.required.add('email');
      return { fractional: [{ cat: [{ var: '$flagd.flagKey' }, { var: 'email' }] }, ...buckets] };
    case 'email':
      g.required.add('email');
      return { fractional: [{ var: 'email' }, ...buckets] };
    case 'cat-key':
      g.required.add('user.org.name');
      return { fractional: [{ cat: [{ var: 'user.org.name' }, '/', { var: '$flagd.flagKey' }] }, ...buckets] };
    case 'literal':
      return { fractional: [r.pick(['everyone', 'seed-1', 'A']), ...buckets] };
  }
  throw new Error('unreachable');
}

/** A branch result inside `if`: a variant name, or (sometimes) a nested fractional or `if`. */
function branch(r, g, depth = 0) {
  const x = r.float();
  if (x < 0.12) return fractional(r, g);
  if (x < 0.2 && depth < 1) return { if: [condition(r, g, 1), branch(r, g, depth + 1), branch(r, g, depth + 1)] };
  return outcome(r, g);
}

function targeting(r, g) {
  const shape = r.weighted([
    [10, 'if'], [4, 'fractional'], [2, 'if-fractional'], [2, 'if-no-else'], [1, 'empty'], [2, 'ref-top'],
  ]);
  switch (shape) {
    case 'if': {
      const pairs = r.int(1, 3);
      const withElse = r.chance(0.75);
      const args = [];
      for (let i = 0; i < pairs; i++) args.push(condition(r, pairs === 1 && !withElse ? { ...g, noVarDefault: true } : g), branch(r, g));
      if (withElse) args.push(branch(r, g));
      return { if: args };
    }
    case 'fractional':
      return fractional(r, g);
    case 'if-fractional':
      return { if: [condition(r, g), fractional(r, g), outcome(r, g)] };
    case 'if-no-else':
      // No else branch: a false condition gives null (DEFAULT).
      return { if: [condition(r, { ...g, noVarDefault: true }), outcome(r, g)] };
    case 'empty':
      return {};
    case 'ref-top':
      return g.evaluators.length ? { if: [{ $ref: r.pick(g.evaluators) }, outcome(r, g), outcome(r, g)] } : { if: [condition(r, { ...g, noVarDefault: true }), outcome(r, g)] };
  }
  throw new Error('unreachable');
}

// ---------------------------------------------------------------------------------------
// Flags and flag sets.

function variantsOf(r, type) {
  switch (type) {
    case 'boolean':
      return r.chance(0.5) ? { on: true, off: false } : { true: true, false: false };
    case 'string': {
      const names = r.subset(['red', 'green', 'blue', 'control', 'treatment', 'a', 'b', 'c'], 4);
      if (names.length < 2) names.push('x1', 'x2');
      return Object.fromEntries(names.map((n) => [n, r.chance(0.8) ? `${n}-value` : '']));
    }
    case 'number': {
      const names = r.subset(['low', 'mid', 'high', 'one', 'two', 'zero'], 4);
      if (names.length < 2) names.push('n1', 'n2');
      return Object.fromEntries(names.map((n) => [n, r.pick([0, 1, -1, 2.5, 100, 1e6, 0.1, -3.75])]));
    }
    case 'object': {
      const names = r.subset(['small', 'large', 'legacy', 'modern'], 3);
      if (names.length < 2) names.push('o1', 'o2');
      return Object.fromEntries(
        names.map((n) => [
          n,
          r.chance(0.5)
            ? { name: n, limit: r.int(0, 50), enabled: r.chance(0.5), tags: r.subset(TAGS, 2) }
            : { nested: { deep: { value: n, list: [1, 'two', null, { three: 3 }] } }, empty: {} },
        ]),
      );
    }
  }
  throw new Error('unreachable');
}

// Operator names neither engine knows (json-logic-engine, under flagd-core, knows some
// extra ones, e.g. `length`, `get`, `val`: never used).
const UNKNOWN_OPERATORS = ['nope', 'regex_match', 'startsWith', 'contains', 'semver', 'ends-with', 'matches', 'is_in', 'fractionl', 'xor'];

/** An expression that cannot be compiled: an unknown operator, or a `$ref` to a missing or
 * broken evaluator. */
function brokenExpr(r, set) {
  const k = r.weighted([[3, 'missing-ref'], [3, 'unknown-op'], [set.brokenEvaluators.length ? 2 : 0, 'broken-evaluator']]);
  switch (k) {
    case 'missing-ref':
      return { $ref: r.pick(['nonexistent_evaluator', 'isStaff', 'missing', 'is_beta_user']) };
    case 'unknown-op':
      return { [r.pick(UNKNOWN_OPERATORS)]: r.pick([[{ var: 'email' }, '@example.com'], [1], []]) };
    case 'broken-evaluator':
      return { $ref: r.pick(set.brokenEvaluators) };
  }
  throw new Error('unreachable');
}

/** Targeting with a broken expression somewhere: at the top, in a condition, in a branch,
 * inside a fractional bucket. */
function brokenTargeting(r, g, set) {
  const bad = brokenExpr(r, set);
  switch (r.weighted([[3, 'condition'], [2, 'top'], [2, 'branch'], [1, 'and'], [1, 'fractional']])) {
    case 'condition':
      return { if: [bad, outcome(r, g), outcome(r, g)] };
    case 'top':
      return bad;
    case 'branch':
      return { if: [condition(r, g), outcome(r, g), { if: [condition(r, g, 1), bad, outcome(r, g)] }] };
    case 'and':
      return { if: [{ and: [condition(r, g, 1), bad] }, outcome(r, g), outcome(r, g)] };
    case 'fractional':
      return { fractional: [[r.pick(g.names), 1], [bad, 1]] };
  }
  throw new Error('unreachable');
}

function genFlag(r, key, set) {
  const g = { key, evaluators: set.evaluatorNames, required: set.required };
  const kind = r.weighted([
    [3, 'static'], [1, 'disabled'], [10, 'targeted'], [1.2, 'var-named'], [1.2, 'bool-direct'], [0.8, 'tier-named'],
    [0.5, 'score-named'], [set.withBroken ? 2.2 : 0, 'broken'],
  ]);
  let type = r.pick(['boolean', 'string', 'number', 'object']);
  let variants;
  if (kind === 'var-named') {
    type = r.pick(['string', 'number']);
    variants = Object.fromEntries(r.subset(PLANS, 4).concat(['fallback']).map((p, i) => [p, type === 'string' ? `plan:${p}` : i]));
    g.varTargeting = r.chance(0.6) ? { var: 'plan' } : { var: ['plan', r.pick(['fallback', 'free', 'zz'])] };
  } else if (kind === 'tier-named') {
    // A number from the context names the variant ("1", "2", ...).
    variants = { 1: 'tier-1', 2: 'tier-2', 3: 'tier-3', fallback: 'none' };
    g.varTargeting = { var: 'user.org.tier' };
  } else if (kind === 'score-named') {
    // A number from the context names the variant, as JavaScript/JSON render it
    // ("0.5", "-3", "1e+21", "1e-7").
    variants = Object.fromEntries(SCORES.map((n, i) => [String(n), i]).concat([['fallback', -1]]));
    g.varTargeting = { var: 'score' };
  } else if (kind === 'bool-direct') {
    // The condition's own result names the variant "true"/"false".
    variants = { true: r.chance(0.5) ? 'yes' : true, false: r.chance(0.5) ? 'no' : false };
  } else {
    variants = variantsOf(r, type);
  }
  g.names = Object.keys(variants);
  if (kind === 'bool-direct') g.boolTargeting = condition(r, g);

  const flag = { state: kind === 'disabled' ? 'DISABLED' : 'ENABLED', variants };
  // defaultVariant: mostly a variant; sometimes absent or null (no default: DEFAULT, no value).
  const dv = r.weighted([[12, 'some'], [1, 'absent'], [1, 'null']]);
  if (dv === 'some') flag.defaultVariant = r.pick(g.names);
  else if (dv === 'null') flag.defaultVariant = null;

  if (kind === 'broken') {
    flag.targeting = brokenTargeting(r, g, set);
    if (r.chance(0.15)) flag.state = 'DISABLED'; // disabled first: DISABLED, not an error
    feature(g, 'broken');
  } else if (kind === 'targeted' || kind === 'disabled' && r.chance(0.6)) flag.targeting = targeting(r, g);
  else if (kind === 'var-named' || kind === 'tier-named' || kind === 'score-named') flag.targeting = r.chance(0.8) ? g.varTargeting : { if: [condition(r, g), g.varTargeting, outcome(r, g)] };
  else if (kind === 'bool-direct') flag.targeting = g.boolTargeting;
  else if (kind === 'static' && r.chance(0.15)) flag.targeting = {};
  if (r.chance(0.15)) flag.metadata = { team: r.pick(['growth', 'core']), rev: r.int(1, 9) };
  set.features[key] = g.features ?? new Set();
  return flag;
}

function genSet(r, index) {
  // Most sets hold broken flags too, as real files do; the rest are clean.
  const set = { evaluatorNames: [], brokenEvaluators: [], required: new Set(), features: {}, withBroken: r.chance(0.6) };
  const doc = {};
  if (r.chance(0.1)) doc.$schema = 'https://flagd.dev/schema/v0/flags.json';
  if (r.chance(0.3)) doc.metadata = { flagSetId: `set-${index}`, version: String(r.int(1, 5)) };
  if (r.chance(0.3) || (set.withBroken && r.chance(0.3))) {
    const evaluators = {};
    const n = r.int(1, 3);
    for (let i = 0; i < n; i++) {
      const name = r.pick(['isStaff', 'isBeta', 'modern', 'eu', 'vip', 'new_users']) + i;
      // Evaluator bodies do not reference evaluators (see the exclusions).
      evaluators[name] = condition(r, { key: 'evaluator', evaluators: [], required: set.required, noVarDefault: true }, 1);
      set.evaluatorNames.push(name);
    }
    // An evaluator that cannot be compiled (flags using it are broken; unused, it is harmless).
    if (set.withBroken && r.chance(0.5)) {
      const name = `broken_${r.int(0, 9)}`;
      evaluators[name] = { [r.pick(UNKNOWN_OPERATORS)]: [{ var: 'email' }, 'x'] };
      set.brokenEvaluators.push(name);
    }
    doc.$evaluators = evaluators;
  }
  const flags = {};
  const n = r.int(1, 6);
  for (let i = 0; i < n; i++) {
    const key = `${r.pick(['new-checkout', 'dark-mode', 'pricing', 'banner', 'rollout', 'exp'])}-${index}-${i}`;
    flags[key] = genFlag(r, key, set);
  }
  doc.flags = flags;
  const contexts = Array.from({ length: CONTEXTS }, () => genContext(r, set.required));
  if (!set.required.has(NO_EMPTY_CONTEXT) && r.chance(0.05)) contexts[0] = {}; // an empty context
  return { doc, contexts, features: set.features };
}

/** Operators a targeting rule uses (with `$ref`s resolved). */
function operators(node, evaluators, out = new Set()) {
  if (Array.isArray(node)) {
    for (const x of node) operators(x, evaluators, out);
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref') {
        out.add('$ref');
        operators(evaluators?.[v], evaluators, out);
        continue;
      }
      out.add(k);
      if (k === 'var' && JSON.stringify(v).includes('$flagd.')) out.add(JSON.stringify(v).includes('timestamp') ? '$flagd.timestamp' : '$flagd.flagKey');
      operators(v, evaluators, out);
    }
  }
  return out;
}

// Every operator the generator produces must decide some evaluations.
const EXERCISED_OPERATORS = [
  'if', '==', '!=', '<', '>', '<=', '>=', 'in', 'and', 'or', '!', '!!', 'var', 'starts_with', 'ends_with',
  'sem_ver', 'fractional', 'cat', '$ref', '$flagd.flagKey', '$flagd.timestamp',
];

// Every generated edge case must decide some evaluations too.
const EXERCISED_FEATURES = [
  'broken', 'fractional-negative-weight', 'fractional-single', 'fractional-nested', 'fractional-non-string-key',
  'semver-partial', 'semver-number',
];

// ---------------------------------------------------------------------------------------
// Both implementations.

const silent = { debug() {}, info() {}, warn() {}, error() {} };

/** flagd-core's answer for every flag, as OFREP-like items keyed by flag key. */
function reference(doc, ctx) {
  const core = new FlagdCore(undefined, silent);
  core.setConfigurations(JSON.stringify(doc));
  const out = {};
  const realNow = Date.now;
  Date.now = () => NOW * 1000 + 250;
  try {
    for (const [key, flag] of core.getFlags()) {
      if (flag.state === 'DISABLED') {
        out[key] = { reason: 'DISABLED', metadata: flag.metadata };
        continue;
      }
      const res = flag.evaluate(ctx, silent);
      if (res.reason === 'ERROR') {
        out[key] = { reason: 'ERROR', errorCode: res.errorCode };
      } else if (res.value === undefined) {
        out[key] = { reason: res.reason, metadata: res.flagMetadata };
      } else {
        out[key] = { reason: res.reason, value: res.value, variant: res.variant, metadata: res.flagMetadata };
      }
    }
  } finally {
    Date.now = realNow;
  }
  return out;
}

/** The CLI's bulk answer, as the same shape. */
function normalizeOfrep(item) {
  if (item.errorCode !== undefined) return { reason: 'ERROR', errorCode: item.errorCode };
  const o = { reason: item.reason };
  if (item.value !== undefined) o.value = item.value;
  if (item.variant !== undefined) o.variant = item.variant;
  o.metadata = item.metadata;
  return o;
}

function run(args) {
  return new Promise((resolvePromise) => {
    execFile(CLI, args, { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolvePromise({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

async function pool(items, n, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i], i);
      }
    }),
  );
  return results;
}

// ---------------------------------------------------------------------------------------

test('edgeflags CLI is built', () => {
  assert.ok(
    existsSync(CLI),
    `edgeflags CLI not found at ${CLI}: build it with \`cargo build --release -p edgeflags-cli\` ` +
      '(or point EDGEFLAGS_CLI at a binary)',
  );
});

test(`edgeflags agrees with @openfeature/flagd-core (seed ${SEED}, ${SETS} flag sets × ${CONTEXTS} contexts)`, async (t) => {
  assert.ok(existsSync(CLI), `edgeflags CLI not found at ${CLI}: run \`cargo build --release -p edgeflags-cli\``);
  const r = rng(SEED);
  const sets = Array.from({ length: SETS }, (_, i) => genSet(r, i));

  const dir = mkdtempSync(join(tmpdir(), 'edgeflags-diff-'));
  let keep = false; // the case files stay when the test fails, for the printed reproducers
  t.after(() => keep || rmSync(dir, { recursive: true, force: true }));
  const jobs = [];
  sets.forEach((s, si) => {
    const flagsPath = join(dir, `set-${si}.flagd.json`);
    writeFileSync(flagsPath, JSON.stringify(s.doc, null, 1));
    s.contexts.forEach((ctx, ci) => {
      const ctxPath = join(dir, `set-${si}.ctx-${ci}.json`);
      writeFileSync(ctxPath, JSON.stringify(ctx));
      jobs.push({ si, ci, flagsPath, ctxPath });
    });
  });

  const outputs = await pool(jobs, CONCURRENCY, (j) =>
    run(['eval', '--flags', j.flagsPath, '--context', `@${j.ctxPath}`, '--now', String(NOW)]),
  );

  const reasons = {};
  const errorCodes = {};
  const opsSeen = {}; // operator → evaluations of enabled flags whose targeting uses it
  const opsMatched = {}; // … of which ended in TARGETING_MATCH
  const featSeen = {}; // generated feature (broken flag, negative weight, …) → evaluations
  const featMatched = {}; // … of which ended in TARGETING_MATCH (PARSE_ERROR for 'broken')
  const mismatches = [];
  let compared = 0;
  let refusedRuns = 0;
  jobs.forEach((j, k) => {
    const { doc, contexts, features } = sets[j.si];
    const ctx = contexts[j.ci];
    const out = outputs[k];
    const expected = reference(doc, ctx);
    for (const [key, want] of Object.entries(expected)) {
      for (const f of features[key] ?? []) {
        featSeen[f] = (featSeen[f] ?? 0) + 1;
        const hit = f === 'broken' ? want.errorCode === 'PARSE_ERROR' : want.reason === 'TARGETING_MATCH';
        if (hit) featMatched[f] = (featMatched[f] ?? 0) + 1;
      }
    }
    let ours;
    try {
      if (out.code !== 0) throw new Error(`exit ${out.code}: ${out.stderr.trim()}`);
      const body = JSON.parse(out.stdout);
      ours = {};
      for (const item of body.flags) ours[item.key] = normalizeOfrep(item);
    } catch (e) {
      // The whole file refused: every flag of it disagrees.
      refusedRuns++;
      for (const key of Object.keys(expected)) {
        compared++;
        mismatches.push({ j, doc, ctx, flag: key, expected: expected[key], actual: `CLI failed: ${e.message}\n${out.stdout}` });
      }
      return;
    }
    const keys = new Set([...Object.keys(expected), ...Object.keys(ours)]);
    for (const key of keys) {
      compared++;
      const want = expected[key];
      const got = ours[key];
      if (want) {
        reasons[want.reason] = (reasons[want.reason] ?? 0) + 1;
        if (want.errorCode) errorCodes[want.errorCode] = (errorCodes[want.errorCode] ?? 0) + 1;
        const flag = doc.flags[key];
        if (flag?.state === 'ENABLED') {
          for (const op of operators(flag.targeting, doc.$evaluators)) {
            opsSeen[op] = (opsSeen[op] ?? 0) + 1;
            if (want.reason === 'TARGETING_MATCH') opsMatched[op] = (opsMatched[op] ?? 0) + 1;
          }
        }
      }
      if (!isDeepStrictEqual(want, got)) mismatches.push({ j, doc, ctx, flag: key, expected: want, actual: got });
    }
  });

  t.diagnostic(`${jobs.length} CLI runs, ${compared} flag evaluations compared`);
  t.diagnostic(`agreement: ${compared - mismatches.length} of ${compared} flag evaluations agree; ${mismatches.length} differ (${refusedRuns} CLI runs refused the whole file)`);
  t.diagnostic(`reasons: ${JSON.stringify(reasons)}; error codes: ${JSON.stringify(errorCodes)}`);
  t.diagnostic(`operators (evaluations using it / of which TARGETING_MATCH): ${Object.keys(opsSeen).sort().map((op) => `${op} ${opsSeen[op]}/${opsMatched[op] ?? 0}`).join(', ')}`);
  t.diagnostic(`features (evaluations / of which TARGETING_MATCH, PARSE_ERROR for broken): ${Object.keys(featSeen).sort().map((f) => `${f} ${featSeen[f]}/${featMatched[f] ?? 0}`).join(', ')}`);

  if (mismatches.length && process.env.DIFF_REPORT_ONLY) {
    const byKind = {};
    for (const m of mismatches) {
      const kind = typeof m.actual === 'string' ? 'whole file refused' : [...(sets[m.j.si].features[m.flag] ?? [])].sort().join('+') || 'other';
      byKind[kind] = (byKind[kind] ?? 0) + 1;
    }
    t.diagnostic(`disagreements by generated feature: ${JSON.stringify(byKind)}`);
    return;
  }
  if (mismatches.length) {
    keep = true;
    const all = join(dir, 'mismatches.jsonl');
    writeFileSync(all, mismatches.map((m) => JSON.stringify({ set: m.j.si, context: m.j.ci, flag: m.flag, flagDef: m.doc.flags[m.flag], evaluators: m.doc.$evaluators, ctx: m.ctx, flagdCore: m.expected, edgeflags: m.actual })).join('\n') + '\n');
    const shown = mismatches.slice(0, SHOW).map((m) => {
      const flagDoc = m.flag === '*' ? m.doc : { ...m.doc, flags: { [m.flag]: m.doc.flags[m.flag] } };
      return [
        `--- set ${m.j.si}, context ${m.j.ci}, flag ${m.flag}`,
        `flags:    ${JSON.stringify(flagDoc)}`,
        `context:  ${JSON.stringify(m.ctx)}`,
        `flagd-core: ${JSON.stringify(m.expected)}`,
        `edgeflags:  ${typeof m.actual === 'string' ? m.actual : JSON.stringify(m.actual)}`,
        `reproduce: edgeflags eval --flags ${m.j.flagsPath} --context @${m.j.ctxPath} --now ${NOW}` +
          (m.flag === '*' ? '' : ` --flag ${m.flag}`),
      ].join('\n');
    });
    assert.fail(
      `${mismatches.length} of ${compared} evaluations differ from flagd-core (all of them: ${all}); ` +
        `first ${shown.length}:\n${shown.join('\n')}`,
    );
  }

  // The generator must really reach every resolution path and every operator.
  const min = { TARGETING_MATCH: 1000, DEFAULT: 100, STATIC: 300, DISABLED: 100, ERROR: 20 };
  for (const [reason, n] of Object.entries(min)) {
    assert.ok((reasons[reason] ?? 0) >= n, `only ${reasons[reason] ?? 0} ${reason} results (want ≥ ${n}): ${JSON.stringify(reasons)}`);
  }
  const scale = Math.min(1, SETS / 400); // smaller DIFF_SETS runs get proportionally lower bars
  for (const op of EXERCISED_OPERATORS) {
    const want = Math.ceil(30 * scale);
    assert.ok((opsMatched[op] ?? 0) >= want, `operator ${op}: only ${opsMatched[op] ?? 0} TARGETING_MATCH evaluations use it (want ≥ ${want})`);
  }
  // …and every generated flagd edge case (broken flags: PARSE_ERROR evaluations).
  for (const f of EXERCISED_FEATURES) {
    const want = Math.ceil(30 * scale);
    assert.ok((featMatched[f] ?? 0) >= want, `${f}: only ${featMatched[f] ?? 0} deciding evaluations (want ≥ ${want})`);
  }
  assert.ok((errorCodes.PARSE_ERROR ?? 0) >= Math.ceil(200 * scale), `only ${errorCodes.PARSE_ERROR ?? 0} PARSE_ERROR results`);
});

test('single-flag mode (--flag) agrees with flagd-core, incl. FLAG_NOT_FOUND', async () => {
  assert.ok(existsSync(CLI), `edgeflags CLI not found at ${CLI}: run \`cargo build --release -p edgeflags-cli\``);
  const r = rng(SEED ^ 0x51f1e);
  const dir = mkdtempSync(join(tmpdir(), 'edgeflags-diff1-'));
  try {
    const jobs = [];
    for (let si = 0; si < 40; si++) {
      const { doc, contexts } = genSet(r, si);
      const flagsPath = join(dir, `set-${si}.flagd.json`);
      writeFileSync(flagsPath, JSON.stringify(doc));
      const keys = Object.keys(doc.flags);
      const key = si % 8 === 7 ? 'no-such-flag' : r.pick(keys);
      jobs.push({ doc, ctx: contexts[0], key, flagsPath });
    }
    const outputs = await pool(jobs, CONCURRENCY, (j) =>
      run(['eval', '--flags', j.flagsPath, '--flag', j.key, '--context', JSON.stringify(j.ctx), '--now', String(NOW)]),
    );
    const bad = [];
    jobs.forEach((j, k) => {
      const out = outputs[k];
      const want = j.key in j.doc.flags ? reference(j.doc, j.ctx)[j.key] : { reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' };
      let got;
      try {
        assert.equal(out.code, 0, out.stderr);
        const body = JSON.parse(out.stdout);
        assert.equal(body.key, j.key);
        got = normalizeOfrep(body);
      } catch (e) {
        got = `CLI failed: ${e.message}`;
      }
      if (!isDeepStrictEqual(want, got)) bad.push(`${j.key} in ${JSON.stringify(j.doc)} with ${JSON.stringify(j.ctx)}: flagd-core ${JSON.stringify(want)}, edgeflags ${JSON.stringify(got)}`);
    });
    assert.deepEqual(bad, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
