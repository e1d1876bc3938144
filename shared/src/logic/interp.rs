//! The interpreter: evaluates a compiled targeting tree against a context.
//!
//! Semantics are json-logic-js's (JavaScript truthiness, `==`, coercions), with flagd's
//! operators (`fractional`, `sem_ver`, `starts_with`, `ends_with`) as flagd (Go) defines
//! them. Nothing here can fail: every operator error is a null result, as in flagd. The
//! recursion follows the compiled tree, whose depth the compiler bounds; a step budget
//! bounds the work one evaluation may do and a byte budget the memory it may build (see
//! [`Budget`]). An evaluation over either budget stops: every later node is null, and the
//! caller answers `GENERAL`.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::Value;

use crate::context::Context;

use super::fractional::{murmur3_x86_32, pick, weight_from_f64, Murmur3, MAX_TOTAL_WEIGHT};
use super::semver::sem_ver;
use super::value::{js_le, js_lt, loose_eq, strict_eq, Val};
use super::{FracVariant, Fractional, IterOp, Node, Op, Var, VarPath};

/// Most steps one evaluation may take: one per node visited, plus one per element of a
/// literal or context array an operation reads (`in`, stringifying). Targeting is written
/// by flag authors but runs on request-supplied contexts; `map` over a large context array
/// inside another `map` could otherwise burn unbounded CPU in a worker. About 25 ms of
/// CPU in workerd.
pub(crate) const MAX_STEPS: u32 = 1_000_000;

/// Most bytes one evaluation may build: string bytes, plus 16 per array element
/// (`value::ELEMENT_BYTES`), of every string and array an operation makes (`cat`, `substr`, `map`,
/// `filter`, `merge`, `missing`, array literals with operations inside) or a `var` copies
/// out of `map`/`reduce` data. 1 MiB is 16 times the largest OFREP request body (a context
/// can hold no more), and an isolate has 128 MB: an accumulator that doubles stops after
/// about 20 rounds instead of exhausting memory.
pub(crate) const MAX_BYTES: u32 = 1 << 20;

/// Steps across all the flags of one bulk evaluation (OFREP bulk, a page's bootstrap): two
/// flags at the per-flag limit, so one runaway flag does not take the rest of the set down
/// with it, and a bulk call costs at most ~50 ms of CPU in workerd.
pub(crate) const MAX_BULK_STEPS: u32 = 2 * MAX_STEPS;

/// Bytes built across all the flags of one bulk evaluation. Each flag's values are freed
/// when it is answered, so this bounds copying work, not peak memory.
pub(crate) const MAX_BULK_BYTES: u32 = 4 * MAX_BYTES;

/// What an evaluation may still spend (a single flag: [`Budget::FLAG`]; a bulk evaluation
/// passes what the flags before it left, at most that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub(crate) steps: u32,
    pub(crate) bytes: u32,
}

impl Budget {
    pub(crate) const FLAG: Self = Self {
        steps: MAX_STEPS,
        bytes: MAX_BYTES,
    };
    pub(crate) const BULK: Self = Self {
        steps: MAX_BULK_STEPS,
        bytes: MAX_BULK_BYTES,
    };
}

/// What an evaluation needs besides the tree: the caller's context, the flag key and
/// the time (both for `$flagd`), and its budget with what it spent so far.
#[derive(Debug)]
pub(crate) struct Env<'a> {
    pub(crate) ctx: &'a Value,
    targeting_key: Option<&'a str>,
    pub(crate) flag_key: &'a str,
    pub(crate) now: u64,
    steps: Cell<u32>,
    bytes: Cell<u32>,
    /// The step limit; lowered to the steps taken when the byte budget runs out, which
    /// stops the evaluation with the one comparison every node makes anyway.
    step_limit: Cell<u32>,
    byte_limit: u32,
}

impl<'a> Env<'a> {
    pub(crate) fn new(ctx: &'a Context, flag_key: &'a str, now: u64, budget: Budget) -> Self {
        let mut env = Self::with_data(ctx.as_value(), ctx.targeting_key(), flag_key, now);
        env.step_limit = Cell::new(budget.steps);
        env.byte_limit = budget.bytes;
        env
    }

    /// An environment over any JSON data (JsonLogic allows arrays as data too).
    pub(crate) fn with_data(
        ctx: &'a Value,
        targeting_key: Option<&'a str>,
        flag_key: &'a str,
        now: u64,
    ) -> Self {
        Self {
            ctx,
            targeting_key,
            flag_key,
            now,
            steps: Cell::new(0),
            bytes: Cell::new(0),
            step_limit: Cell::new(MAX_STEPS),
            byte_limit: MAX_BYTES,
        }
    }

    /// Whether a budget ran out (the result is then meaningless).
    pub(crate) fn exhausted(&self) -> bool {
        self.steps.get() >= self.step_limit.get()
    }

    /// What the evaluation spent (at most its budget), and whether it ran out of bytes.
    pub(crate) fn spent(&self) -> (Budget, bool) {
        let bytes = self.bytes.get();
        let spent = Budget {
            steps: self.steps.get().min(self.step_limit.get()),
            bytes: bytes.min(self.byte_limit),
        };
        (spent, bytes > self.byte_limit)
    }

    /// Counts a step per element of a literal or context array that an operation reads.
    fn read(&self, v: &Val<'_>) {
        if let Val::Json(Value::Array(a)) = v {
            // `as`: no array has 2^32 elements.
            self.steps
                .set(self.steps.get().saturating_add(a.len() as u32));
        }
    }

    /// Counts the bytes of a value just built (or copied); over the budget, stops the
    /// evaluation and yields null. Every value is counted when it is made, so no value is
    /// much larger than the budget and nothing larger is ever allocated.
    fn built<'v>(&self, v: Val<'v>) -> Val<'v> {
        let bytes = self.bytes.get().saturating_add(v.bytes());
        self.bytes.set(bytes);
        if bytes > self.byte_limit {
            self.step_limit.set(self.steps.get());
            return Val::Null;
        }
        v
    }

    fn targeting_key(&self) -> Option<&'a str> {
        self.targeting_key
    }
}

/// The data `var` reads: the context at the top level, the current element inside
/// `map`/`filter`/`all`/`none`/`some`, `{current, accumulator}` inside `reduce`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'s, 'a> {
    Root,
    Item(&'s Val<'a>),
    Reduce {
        current: &'s Val<'a>,
        accumulator: &'s Val<'a>,
    },
}

/// Evaluates a node.
pub(crate) fn eval<'a>(node: &'a Node, env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    let steps = env.steps.get();
    if steps >= env.step_limit.get() {
        return Val::Null;
    }
    env.steps.set(steps + 1);
    match node {
        Node::Null => Val::Null,
        Node::Bool(b) => Val::Bool(*b),
        Node::Num(n) => Val::Num(*n),
        Node::Str(s) => Val::Str(s),
        Node::Json(_) => literal(node, env),
        Node::Array(items) => env.built(Val::Array(
            items.iter().map(|n| eval(n, env, scope)).collect(),
        )),
        Node::Var(var) => eval_var(var, env, scope),
        Node::VarLit(f) => {
            let v = eval_var(&f.var, env, scope);
            let l = literal(&f.lit, env);
            if f.var_first {
                binary(f.op, &v, &l)
            } else {
                binary(f.op, &l, &v)
            }
        }
        Node::If(args) => {
            let mut pairs = args.chunks_exact(2);
            for pair in pairs.by_ref() {
                if let [cond, then] = pair {
                    if eval(cond, env, scope).truthy() {
                        return eval(then, env, scope);
                    }
                }
            }
            match pairs.remainder() {
                [otherwise] => eval(otherwise, env, scope),
                _ => Val::Null,
            }
        }
        Node::And(args) => {
            let mut last = Val::Null;
            for a in args.iter() {
                last = eval(a, env, scope);
                if !last.truthy() {
                    return last;
                }
            }
            last
        }
        Node::Or(args) => {
            let mut last = Val::Null;
            for a in args.iter() {
                last = eval(a, env, scope);
                if last.truthy() {
                    return last;
                }
            }
            last
        }
        Node::Op(op, args) => env.built(eval_op(*op, args, env, scope)),
        Node::Iter(op, args) => env.built(eval_iter(*op, args, env, scope)),
        Node::Fractional(f) => eval_fractional(f, env, scope),
    }
}

fn eval_var<'a>(var: &'a Var, env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    let found = match &var.path {
        VarPath::Whole => Some(whole(env, scope)),
        VarPath::Static(segs) => lookup(segs.iter().map(|s| &**s), env, scope),
        VarPath::Dynamic(path) => {
            let p = eval(path, env, scope);
            if p.is_null() {
                Some(whole(env, scope))
            } else {
                let p = p.to_js_string();
                if p.is_empty() {
                    Some(whole(env, scope))
                } else {
                    lookup(p.split('.'), env, scope)
                }
            }
        }
    };
    // A present null also yields the default: flagd's Go JsonLogic and flagd-core both
    // do this (json-logic-js would return the null).
    match found {
        // A context array costs a step per element (operations scan or stringify it); a
        // value copied out of `map`/`reduce` data counts as built.
        Some(v) if !v.is_null() => {
            env.read(&v);
            env.built(v)
        }
        _ => var
            .default
            .as_ref()
            .map_or(Val::Null, |d| eval(d, env, scope)),
    }
}

/// The value of a literal node, without interpreter dispatch. A literal array costs a step
/// per element, as operations scan or stringify it.
fn literal<'a>(node: &'a Node, env: &Env<'_>) -> Val<'a> {
    match node {
        Node::Bool(b) => Val::Bool(*b),
        Node::Num(n) => Val::Num(*n),
        Node::Str(s) => Val::Str(s),
        Node::Json(v) => {
            let v = Val::from_json(v);
            env.read(&v);
            v
        }
        _ => Val::Null,
    }
}

/// The binary operators (two-argument forms), shared by [`Node::Op`] and
/// [`Node::VarLit`].
fn binary<'a>(op: Op, x: &Val<'a>, y: &Val<'a>) -> Val<'a> {
    match op {
        Op::Eq => Val::Bool(loose_eq(x, y)),
        Op::Ne => Val::Bool(!loose_eq(x, y)),
        Op::StrictEq => Val::Bool(strict_eq(x, y)),
        Op::StrictNe => Val::Bool(!strict_eq(x, y)),
        Op::Lt => Val::Bool(js_lt(x, y)),
        Op::Le => Val::Bool(js_le(x, y)),
        Op::Gt => Val::Bool(js_lt(y, x)),
        Op::Ge => Val::Bool(js_le(y, x)),
        Op::In => Val::Bool(match y {
            Val::Str(_) | Val::String(_) => {
                y.as_str().is_some_and(|h| h.contains(&*x.to_js_string()))
            }
            Val::Json(Value::Array(items)) => {
                items.iter().any(|i| strict_eq(&Val::from_json(i), x))
            }
            Val::Array(items) => items.iter().any(|i| strict_eq(i, x)),
            _ => false,
        }),
        Op::StartsWith | Op::EndsWith => match (x.as_str(), y.as_str()) {
            (Some(s), Some(affix)) => Val::Bool(if op == Op::StartsWith {
                s.starts_with(affix)
            } else {
                s.ends_with(affix)
            }),
            _ => Val::Null,
        },
        _ => Val::Null,
    }
}

fn whole<'a>(env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    match scope {
        Scope::Root => Val::Json(env.ctx),
        Scope::Item(v) => v.clone(),
        // `{current, accumulator}` is not materialised; its parts are read by name.
        Scope::Reduce { .. } => Val::Null,
    }
}

/// `var` lookup along dotted segments; `None` is JavaScript's `undefined`.
fn lookup<'a, 'p>(
    segs: impl IntoIterator<Item = &'p str>,
    env: &Env<'a>,
    scope: Scope<'_, 'a>,
) -> Option<Val<'a>> {
    let mut segs = segs.into_iter();
    let Some(first) = segs.next() else {
        return Some(whole(env, scope));
    };
    let mut cur = match scope {
        // flagd injects `$flagd` into the data (overriding any `$flagd` the caller sent);
        // it is resolved here instead of copying the caller's context.
        Scope::Root if first == "$flagd" => Val::Flagd {
            flag_key: env.flag_key,
            timestamp: env.now,
        },
        Scope::Root => Val::Json(env.ctx).get(first)?,
        Scope::Item(v) => v.get(first)?,
        Scope::Reduce {
            current,
            accumulator,
        } => match first {
            "current" => current.clone(),
            "accumulator" => accumulator.clone(),
            _ => return None,
        },
    };
    for seg in segs {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn arg<'a>(args: &'a [Node], i: usize, env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    args.get(i).map_or(Val::Null, |n| eval(n, env, scope))
}

fn eval_op<'a>(op: Op, args: &'a [Node], env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    let a = |i: usize| arg(args, i, env, scope);
    match op {
        Op::Eq | Op::Ne | Op::StrictEq | Op::StrictNe | Op::In => binary(op, &a(0), &a(1)),
        Op::Not => Val::Bool(!a(0).truthy()),
        Op::NotNot => Val::Bool(a(0).truthy()),
        // With a third argument, `<` and `<=` test "between" (json-logic-js); `>` and
        // `>=` do too, as in flagd's Go JsonLogic.
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            let (x, y) = (a(0), a(1));
            let cmp = |l: &Val<'a>, r: &Val<'a>| match op {
                Op::Lt => js_lt(l, r),
                Op::Le => js_le(l, r),
                Op::Gt => js_lt(r, l),
                _ => js_le(r, l),
            };
            if args.len() >= 3 {
                let z = a(2);
                Val::Bool(cmp(&x, &y) && cmp(&y, &z))
            } else {
                Val::Bool(cmp(&x, &y))
            }
        }
        Op::Max | Op::Min => {
            if args.is_empty() {
                return Val::Null;
            }
            let mut acc = if op == Op::Max {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            for n in args.iter() {
                let v = eval(n, env, scope).to_number();
                if v.is_nan() {
                    return Val::Num(f64::NAN);
                }
                acc = if op == Op::Max {
                    acc.max(v)
                } else {
                    acc.min(v)
                };
            }
            Val::Num(acc)
        }
        Op::Add => Val::Num(args.iter().map(|n| eval(n, env, scope).parse_float()).sum()),
        Op::Mul => {
            if args.is_empty() {
                return Val::Null;
            }
            Val::Num(
                args.iter()
                    .map(|n| eval(n, env, scope).parse_float())
                    .product(),
            )
        }
        Op::Sub => match args.len() {
            0 => Val::Num(f64::NAN),
            1 => Val::Num(-a(0).to_number()),
            _ => Val::Num(a(0).to_number() - a(1).to_number()),
        },
        Op::Div => Val::Num(a(0).to_number() / a(1).to_number()),
        Op::Mod => Val::Num(a(0).to_number() % a(1).to_number()),
        Op::Cat => {
            let mut out = String::new();
            for n in args.iter() {
                eval(n, env, scope).write_js_string(&mut out, 0);
            }
            Val::String(out)
        }
        Op::Substr => {
            let end = args.get(2).map(|n| eval(n, env, scope));
            substr(&a(0).to_js_string(), a(1).to_number(), end.as_ref())
        }
        Op::Merge => {
            let mut out = Vec::new();
            for n in args.iter() {
                let v = eval(n, env, scope);
                match v {
                    Val::Json(Value::Array(items)) => out.extend(items.iter().map(Val::from_json)),
                    Val::Array(items) => out.extend(items),
                    other => out.push(other),
                }
            }
            Val::Array(out)
        }
        Op::Missing => {
            let first = a(0);
            if first.array_len().is_some() {
                Val::Array(missing_keys(&first, env, scope))
            } else {
                let all = Val::Array(args.iter().map(|n| eval(n, env, scope)).collect());
                Val::Array(missing_keys(&all, env, scope))
            }
        }
        Op::MissingSome => {
            let need = a(0).to_number();
            let options = a(1);
            let Some(len) = options.array_len() else {
                return Val::Array(Vec::new());
            };
            let missing = missing_keys(&options, env, scope);
            if (len - missing.len()) as f64 >= need {
                Val::Array(Vec::new())
            } else {
                Val::Array(missing)
            }
        }
        Op::Log => a(0),
        Op::StartsWith | Op::EndsWith => {
            if args.len() != 2 {
                return Val::Null;
            }
            binary(op, &a(0), &a(1))
        }
        Op::SemVer => {
            if args.len() != 3 {
                return Val::Null;
            }
            let (v, o, t) = (a(0), a(1), a(2));
            match (version_text(&v), o.as_str(), version_text(&t)) {
                (Some(v), Some(o), Some(t)) => sem_ver(&v, o, &t).map_or(Val::Null, Val::Bool),
                _ => Val::Null,
            }
        }
    }
}

/// A `sem_ver` operand as text: a string, or a number as flagd renders it (`2` → "2",
/// `1.2` → "1.2", then read as the partial versions 2.0.0 and 1.2.0). Anything else is
/// no version.
fn version_text<'v>(v: &'v Val<'_>) -> Option<Cow<'v, str>> {
    match v {
        Val::Num(_) => Some(v.to_js_string()),
        _ => v.as_str().map(Cow::Borrowed),
    }
}

/// json-logic-js `missing`: the keys whose `var` is null, undefined or "".
fn missing_keys<'a>(keys: &Val<'a>, env: &Env<'a>, scope: Scope<'_, 'a>) -> Vec<Val<'a>> {
    let mut out = Vec::new();
    let n = keys.array_len().unwrap_or(0);
    for i in 0..n {
        let Some(key) = keys.array_get(i) else {
            continue;
        };
        let path = key.to_js_string();
        let value = if key.is_null() || path.is_empty() {
            Some(whole(env, scope))
        } else {
            lookup(path.split('.'), env, scope)
        };
        let absent = match &value {
            None | Some(Val::Null) => true,
            Some(v) => v.as_str() == Some(""),
        };
        if absent {
            out.push(key);
        }
    }
    out
}

/// JavaScript `String.prototype.substr`, on Unicode scalar values, with json-logic-js's
/// negative-length extension.
fn substr<'a>(source: &str, start: f64, end: Option<&Val<'_>>) -> Val<'a> {
    let chars: Vec<char> = source.chars().collect();
    let size = chars.len() as f64;
    let clamp_start = |s: f64| {
        let s = if s.is_nan() { 0.0 } else { s.trunc() };
        if s < 0.0 {
            (size + s).max(0.0)
        } else {
            s.min(size)
        }
    };
    let from = clamp_start(start);
    let rest = size - from;
    let len = match end {
        None => rest,
        Some(e) => {
            let e = e.to_number();
            let e = if e.is_nan() { 0.0 } else { e.trunc() };
            if e < 0.0 {
                (rest + e).max(0.0)
            } else {
                e.min(rest)
            }
        }
    };
    let (from, len) = (from as usize, len as usize);
    Val::String(chars.iter().skip(from).take(len).collect())
}

fn eval_iter<'a>(op: IterOp, args: &'a [Node], env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    let source = arg(args, 0, env, scope);
    let logic = args.get(1);
    let apply = |item: &Val<'a>| match logic {
        Some(l) => eval(l, env, Scope::Item(item)),
        None => Val::Null,
    };
    match op {
        IterOp::Map => {
            let mut out = Vec::new();
            for_each(&source, |item| {
                out.push(apply(item));
                true
            });
            Val::Array(out)
        }
        IterOp::Filter => {
            let mut out = Vec::new();
            for_each(&source, |item| {
                if apply(item).truthy() {
                    out.push(item.clone());
                }
                true
            });
            Val::Array(out)
        }
        IterOp::Reduce => {
            let mut acc = arg(args, 2, env, scope);
            if source.array_len().is_none() {
                return acc;
            }
            for_each(&source, |item| {
                acc = match logic {
                    Some(l) => eval(
                        l,
                        env,
                        Scope::Reduce {
                            current: item,
                            accumulator: &acc,
                        },
                    ),
                    None => Val::Null,
                };
                true
            });
            acc
        }
        IterOp::All => {
            if source.array_len().unwrap_or(0) == 0 {
                return Val::Bool(false);
            }
            let mut all = true;
            for_each(&source, |item| {
                all = apply(item).truthy();
                all
            });
            Val::Bool(all)
        }
        IterOp::None | IterOp::Some => {
            let mut any = false;
            for_each(&source, |item| {
                any = apply(item).truthy();
                !any
            });
            Val::Bool(if op == IterOp::Some { any } else { !any })
        }
    }
}

/// Calls `f` on each element of an array value until it returns false; non-arrays have
/// no elements.
fn for_each<'a>(source: &Val<'a>, mut f: impl FnMut(&Val<'a>) -> bool) {
    match source {
        Val::Json(Value::Array(items)) => {
            for item in items {
                if !f(&Val::from_json(item)) {
                    break;
                }
            }
        }
        Val::Array(items) => {
            for item in items {
                if !f(item) {
                    break;
                }
            }
        }
        _ => {}
    }
}

fn frac_variant<'a>(v: &'a FracVariant) -> Val<'a> {
    match v {
        FracVariant::Str(s) => Val::Str(s),
        FracVariant::Bool(b) => Val::Bool(*b),
        FracVariant::Num(n) => Val::Num(*n),
        FracVariant::Null => Val::Null,
    }
}

/// Hash of flagd's default bucketing key, `flagKey + targetingKey`; `None` without a
/// string targeting key (flagd then evaluates `fractional` to null).
fn default_key_hash(env: &Env<'_>) -> Option<u32> {
    env.targeting_key().map(|tk| {
        Murmur3::new()
            .write(env.flag_key.as_bytes())
            .write(tk.as_bytes())
            .finish()
    })
}

fn eval_fractional<'a>(f: &'a Fractional, env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    let Some(fast) = &f.fast else {
        return fractional_general(&f.args, env, scope);
    };
    let hash = if f.key_expr {
        match arg(&f.args, 0, env, scope) {
            Val::Str(s) => Some(murmur3_x86_32(s.as_bytes())),
            Val::String(s) => Some(murmur3_x86_32(s.as_bytes())),
            Val::Null => env
                .targeting_key()
                .map(|tk| fast.prefix.write(tk.as_bytes()).finish()),
            // Not a key after all: flagd then reads it as the first bucket.
            _ => return fractional_general(&f.args, env, scope),
        }
    } else {
        // The flag key's part of the default key was hashed at load time.
        env.targeting_key()
            .map(|tk| fast.prefix.write(tk.as_bytes()).finish())
    };
    let Some(hash) = hash else {
        return Val::Null;
    };
    pick(hash, fast.weights.iter().copied(), fast.total)
        .and_then(|i| fast.variants.get(i))
        .map_or(Val::Null, frac_variant)
}

/// flagd's `fractional` with every argument evaluated first, for buckets whose variant
/// or weight is itself an expression. Mirrors flagd's `parseFractionalEvaluationData`.
fn fractional_general<'a>(args: &'a [Node], env: &Env<'a>, scope: Scope<'_, 'a>) -> Val<'a> {
    if args.is_empty() {
        return Val::Null;
    }
    let values: Vec<Val<'a>> = args.iter().map(|n| eval(n, env, scope)).collect();
    // A string first argument is the bucketing key; null means "use the default key";
    // anything else is already the first bucket (flagd's rules).
    let (hash, skip_first) = match values.first() {
        Some(v @ (Val::Str(_) | Val::String(_))) => {
            (v.as_str().map(|s| murmur3_x86_32(s.as_bytes())), true)
        }
        Some(Val::Null) => (default_key_hash(env), true),
        _ => (default_key_hash(env), false),
    };
    let Some(hash) = hash else {
        return Val::Null;
    };
    let bucket_values = if skip_first {
        values.get(1..).unwrap_or(&[])
    } else {
        values.as_slice()
    };
    let mut buckets: Vec<(Val<'a>, u64)> = Vec::with_capacity(values.len());
    let mut total: u64 = 0;
    for bucket in bucket_values {
        let Some(len) = bucket.array_len() else {
            return Val::Null;
        };
        if len == 0 {
            return Val::Null;
        }
        let variant = match bucket.array_get(0) {
            Some(v @ (Val::Str(_) | Val::String(_) | Val::Bool(_) | Val::Num(_) | Val::Null)) => v,
            _ => return Val::Null,
        };
        let weight = match bucket.array_get(1) {
            None | Some(Val::Null) => 1,
            Some(Val::Num(w)) => match weight_from_f64(w) {
                Some(w) => w,
                None => return Val::Null,
            },
            Some(_) => return Val::Null,
        };
        total += weight;
        if total > MAX_TOTAL_WEIGHT {
            return Val::Null;
        }
        buckets.push((variant, weight));
    }
    pick(hash, buckets.iter().map(|(_, w)| *w), total)
        .and_then(|i| buckets.into_iter().nth(i))
        .map_or(Val::Null, |(v, _)| v)
}
