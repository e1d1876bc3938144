//! The compiled flag set and flag evaluation.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::context::Context;
use crate::error::{Diagnostic, ErrorCode, LoadError};
use crate::evaluation::{BulkEvaluation, Evaluation, Reason};
use crate::keyindex::{find_sorted, KeyIndex};
use crate::load::{self, LoadOptions, Loaded};
use crate::logic::fractional::{pick, Murmur3};
use crate::logic::interp::{self, Budget, Env, Scope};
use crate::logic::value::{js_number_string, write_js_number, Val};
use crate::logic::{FracVariant, Node};

/// One compiled flag.
#[derive(Debug)]
pub(crate) struct Flag {
    pub(crate) key: Box<str>,
    pub(crate) enabled: bool,
    /// Sorted by name, for binary search.
    pub(crate) variants: Box<[(Arc<str>, Value)]>,
    /// Index into `variants`.
    pub(crate) default_variant: Option<usize>,
    pub(crate) targeting: Option<Node>,
    /// Shortcut for the most common rollout shape, targeting that is just a
    /// `fractional` on the default key with literal buckets: buckets are resolved to
    /// variants at load time, so evaluation is one hash and a walk over the weights.
    pub(crate) root_fractional: Option<RootFractional>,
    /// Flag-set metadata overlaid with the flag's own, merged at load time.
    pub(crate) metadata: Map<String, Value>,
    /// Why the flag cannot be evaluated (lenient loads only): it answers `PARSE_ERROR`.
    pub(crate) errors: Option<FlagErrors>,
}

impl Flag {
    fn variant(&self, name: &str) -> Option<(&str, &Value)> {
        // Literal results share the variant name's allocation (see the compiler), so
        // most lookups end at a pointer comparison.
        self.variants
            .iter()
            .position(|(k, _)| std::ptr::eq(k.as_ptr(), name.as_ptr()) && k.len() == name.len())
            .or_else(|| find_sorted(&self.variants, name, |(k, _)| k))
            .and_then(|i| self.variants.get(i))
            .map(|(k, v)| (&**k, v))
    }

    fn default_variant(&self) -> Option<(&str, &Value)> {
        self.default_variant
            .and_then(|i| self.variants.get(i))
            .map(|(k, v)| (&**k, v))
    }
}

/// Why a broken flag cannot be evaluated: every error with its path. A build without the
/// `diagnostics` feature has no messages to keep (they are one fixed text), only the fact;
/// keeping nothing keeps the service worker's wasm small.
#[cfg(feature = "diagnostics")]
pub(crate) type FlagErrors = Vec<Diagnostic>;
/// See the `diagnostics` build's `FlagErrors`.
#[cfg(not(feature = "diagnostics"))]
#[derive(Debug)]
pub(crate) struct FlagErrors;

/// A broken flag's errors as diagnostics (none kept without the `diagnostics` feature).
#[cfg(feature = "diagnostics")]
fn diagnostics(errors: &FlagErrors) -> &[Diagnostic] {
    errors
}
#[cfg(not(feature = "diagnostics"))]
fn diagnostics(_: &FlagErrors) -> &[Diagnostic] {
    &[]
}

/// `errorDetails` of a broken flag: "flag `k` cannot be evaluated: PATH: MESSAGE; …", or the
/// fixed message of a build without diagnostics.
#[cfg(feature = "diagnostics")]
fn parse_error_details(key: &str, errors: &FlagErrors) -> String {
    let mut details = format!("flag `{key}` cannot be evaluated:");
    for e in errors {
        details.push(' ');
        details.push_str(&e.to_string());
        details.push(';');
    }
    details.pop();
    details
}
#[cfg(not(feature = "diagnostics"))]
fn parse_error_details(_: &str, _: &FlagErrors) -> String {
    Diagnostic::without_details().message
}

/// See [`Flag::root_fractional`].
#[derive(Debug)]
pub(crate) struct RootFractional {
    prefix: Murmur3,
    weights: Box<[u64]>,
    total: u64,
    targets: Box<[Target]>,
}

/// What a bucket of a [`RootFractional`] serves.
#[derive(Debug, Clone, Copy)]
enum Target {
    Variant(usize),
    /// A null bucket (or NaN): the default variant.
    Default,
    /// A bucket that names no variant: left to the interpreter, which reports it.
    Interpret,
}

impl RootFractional {
    /// The shortcut for `targeting`, when it has the shape.
    pub(crate) fn plan(targeting: &Node, variants: &[(Arc<str>, Value)]) -> Option<Self> {
        let Node::Fractional(f) = targeting else {
            return None;
        };
        let fast = f.fast.as_ref().filter(|_| !f.key_expr)?;
        let position = |name: &str| find_sorted(variants, name, |(k, _)| k);
        let targets = fast
            .variants
            .iter()
            .map(|v| {
                let name = match v {
                    FracVariant::Null => return Target::Default,
                    FracVariant::Num(n) if !n.is_finite() => return Target::Default,
                    FracVariant::Str(s) => s.to_string(),
                    FracVariant::Bool(b) => b.to_string(),
                    FracVariant::Num(n) => js_number_string(*n),
                };
                position(&name).map_or(Target::Interpret, Target::Variant)
            })
            .collect();
        Some(Self {
            prefix: fast.prefix,
            weights: fast.weights.clone(),
            total: fast.total,
            targets,
        })
    }
}

/// A loaded, validated and compiled flagd flag set. Immutable, `Send + Sync`, and cheap
/// to evaluate: evaluation borrows from it and allocates only what the result needs.
#[derive(Debug)]
pub struct FlagSet {
    /// Sorted by key.
    pub(crate) flags: Box<[Flag]>,
    /// Hash index over `flags` by key.
    pub(crate) index: KeyIndex,
    pub(crate) metadata: Map<String, Value>,
    /// Metadata reported with `FLAG_NOT_FOUND` (none: OFREP's failure body has none).
    pub(crate) empty: Map<String, Value>,
}

/// What the targeting produced, as a variant name.
enum Outcome<'v> {
    /// Null (or NaN/Infinity, which JSON renders as null): serve the default variant.
    Default,
    Name(Cow<'v, str>),
    /// An array or object: it cannot name a variant.
    NotAName(&'static str),
}

fn outcome<'v>(v: &'v Val<'_>) -> Outcome<'v> {
    match v {
        Val::Null => Outcome::Default,
        Val::Str(s) => Outcome::Name(Cow::Borrowed(s)),
        Val::String(s) => Outcome::Name(Cow::Borrowed(s)),
        // flagd renders the JsonLogic result as JSON and strips the quotes, so `true`
        // names the variant "true" and `1` the variant "1".
        Val::Bool(true) => Outcome::Name(Cow::Borrowed("true")),
        Val::Bool(false) => Outcome::Name(Cow::Borrowed("false")),
        Val::Num(n) if !n.is_finite() => Outcome::Default,
        Val::Num(n) => {
            let mut s = String::new();
            write_js_number(*n, &mut s);
            Outcome::Name(Cow::Owned(s))
        }
        Val::Json(Value::Array(_)) | Val::Array(_) => Outcome::NotAName("an array"),
        Val::Json(_) | Val::Flagd { .. } => Outcome::NotAName("an object"),
    }
}

impl FlagSet {
    /// Parses, validates and compiles a flagd flag-set document.
    pub fn from_json_str(text: &str, opts: LoadOptions) -> Result<Loaded, LoadError> {
        load::from_json_str(text, opts)
    }

    /// Validates and compiles a flagd flag-set document already parsed as JSON.
    pub fn from_value(doc: &Value, opts: LoadOptions) -> Result<Loaded, LoadError> {
        load::from_value(doc, opts)
    }

    /// Number of flags.
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// Whether the set has no flags.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }

    /// The flag keys, sorted.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.flags.iter().map(|f| &*f.key)
    }

    /// Whether a flag with this key exists.
    pub fn contains(&self, flag_key: &str) -> bool {
        self.find(flag_key).is_some()
    }

    /// The flag set's own metadata.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// A flag's metadata (set metadata overlaid with the flag's), if the flag exists.
    pub fn flag_metadata(&self, flag_key: &str) -> Option<&Map<String, Value>> {
        self.find(flag_key).map(|f| &f.metadata)
    }

    /// The variant names of a flag, in sorted order, if the flag exists. The edge uses them
    /// to enumerate every per-variant cache entry of a URL when invalidating it.
    pub fn variant_names(&self, flag_key: &str) -> Option<impl Iterator<Item = &str>> {
        self.find(flag_key)
            .map(|f| f.variants.iter().map(|(k, _)| &**k))
    }

    /// The flags a lenient load kept although their definitions have errors, in flag-key
    /// order, each with its errors (JSON path and message; a build without the
    /// `diagnostics` feature lists the flags with no errors). They evaluate to
    /// `PARSE_ERROR`. Empty after a default or strict load, which refuses such a set instead.
    pub fn flag_errors(&self) -> impl Iterator<Item = (&str, &[Diagnostic])> {
        self.flags
            .iter()
            .filter_map(|f| f.errors.as_ref().map(|e| (&*f.key, diagnostics(e))))
    }

    fn find(&self, key: &str) -> Option<&Flag> {
        self.index
            .find(key, |i| self.flags.get(i).map(|f| &*f.key))
            .and_then(|i| self.flags.get(i))
    }

    /// Evaluates one flag for a context at a given time (unix seconds, exposed to
    /// targeting as `$flagd.timestamp`; the core never reads a clock).
    pub fn evaluate<'a>(
        &'a self,
        flag_key: &str,
        ctx: &Context,
        now_unix_secs: u64,
    ) -> Evaluation<'a> {
        match self.find(flag_key) {
            Some(flag) => {
                let mut budget = Budget::FLAG;
                self.evaluate_flag(flag, ctx, now_unix_secs, &mut budget)
            }
            None => Evaluation::error(
                Cow::Owned(flag_key.to_owned()),
                ErrorCode::FlagNotFound,
                format!("flag `{flag_key}` does not exist"),
                &self.empty,
            ),
        }
    }

    /// Evaluates every flag for one context, in flag-key order. Disabled flags are
    /// included, with reason `DISABLED` and no value (as flagd's OFREP does since it
    /// treats disabled as a successful "use your code default").
    ///
    /// The whole call shares one work budget (2,000,000 steps and 4 MiB built, besides
    /// each flag's own 1,000,000 steps and 1 MiB): once the flags before it spent it, a
    /// flag whose targeting needs the interpreter answers `GENERAL` (flags without
    /// targeting, disabled flags and plain `fractional` rollouts cost nothing and still
    /// answer). Flags are taken in key order, so which ones fail is deterministic.
    pub fn evaluate_all<'a>(&'a self, ctx: &Context, now_unix_secs: u64) -> BulkEvaluation<'a> {
        let mut budget = Budget::BULK;
        BulkEvaluation {
            flags: self
                .flags
                .iter()
                .map(|f| self.evaluate_flag(f, ctx, now_unix_secs, &mut budget))
                .collect(),
        }
    }

    /// Evaluates one flag within what is left of `budget`, and takes what it spent from it.
    fn evaluate_flag<'a>(
        &'a self,
        flag: &'a Flag,
        ctx: &Context,
        now: u64,
        budget: &mut Budget,
    ) -> Evaluation<'a> {
        let key = Cow::Borrowed(&*flag.key);
        if !flag.enabled {
            return Evaluation {
                key,
                value: None,
                variant: None,
                reason: Reason::Disabled,
                error: None,
                metadata: &flag.metadata,
            };
        }
        if let Some(errors) = &flag.errors {
            let details = parse_error_details(&flag.key, errors);
            return Evaluation::error(key, ErrorCode::ParseError, details, &flag.metadata);
        }
        let Some(targeting) = &flag.targeting else {
            return serve_default(flag, Reason::Static);
        };
        if let Some(rf) = &flag.root_fractional {
            // Same result as interpreting the rule (flagd: no string targeting key, no
            // bucket, null), without the interpreter.
            let Some(tk) = ctx.targeting_key() else {
                return serve_default(flag, Reason::Default);
            };
            let hash = rf.prefix.write(tk.as_bytes()).finish();
            match pick(hash, rf.weights.iter().copied(), rf.total).and_then(|i| rf.targets.get(i)) {
                Some(Target::Variant(i)) => {
                    if let Some((variant, value)) = flag.variants.get(*i) {
                        return Evaluation {
                            key,
                            value: Some(value),
                            variant: Some(variant),
                            reason: Reason::TargetingMatch,
                            error: None,
                            metadata: &flag.metadata,
                        };
                    }
                }
                Some(Target::Default) | None => return serve_default(flag, Reason::Default),
                Some(Target::Interpret) => {}
            }
        }
        // The flag's own budget, or what the bulk evaluation has left if that is less.
        let limit = Budget {
            steps: budget.steps.min(interp::MAX_STEPS),
            bytes: budget.bytes.min(interp::MAX_BYTES),
        };
        let env = Env::new(ctx, &flag.key, now, limit);
        let result = interp::eval(targeting, &env, Scope::Root);
        let (spent, out_of_bytes) = env.spent();
        budget.steps -= spent.steps;
        budget.bytes -= spent.bytes;
        if env.exhausted() {
            // Which budget: the flag's own, or the bulk evaluation's when it had less left.
            let what = if out_of_bytes {
                if limit.bytes < interp::MAX_BYTES {
                    "4194304 bytes built across this bulk evaluation's flags"
                } else {
                    "1048576 bytes built (strings, arrays)"
                }
            } else if limit.steps < interp::MAX_STEPS {
                "2000000 evaluation steps across this bulk evaluation's flags"
            } else {
                "1000000 evaluation steps"
            };
            return Evaluation::error(
                key,
                ErrorCode::General,
                format!(
                    "targeting of flag `{}` exceeded the budget of {what}",
                    flag.key
                ),
                &flag.metadata,
            );
        }
        match outcome(&result) {
            Outcome::Default => serve_default(flag, Reason::Default),
            Outcome::Name(name) => match flag.variant(&name) {
                Some((variant, value)) => Evaluation {
                    key,
                    value: Some(value),
                    variant: Some(variant),
                    reason: Reason::TargetingMatch,
                    error: None,
                    metadata: &flag.metadata,
                },
                None => Evaluation::error(
                    key,
                    ErrorCode::General,
                    format!(
                        "targeting of flag `{}` returned \"{name}\", which is not one of its variants",
                        flag.key
                    ),
                    &flag.metadata,
                ),
            },
            Outcome::NotAName(kind) => Evaluation::error(
                key,
                ErrorCode::General,
                format!(
                    "targeting of flag `{}` returned {kind}, which cannot name a variant",
                    flag.key
                ),
                &flag.metadata,
            ),
        }
    }
}

/// The default variant with `reason`; without one, the caller's code default applies:
/// reason `DEFAULT` and no value (flagd's "fallback", OFREP's `codeDefaultFlag`).
fn serve_default(flag: &Flag, reason: Reason) -> Evaluation<'_> {
    let key = Cow::Borrowed(&*flag.key);
    match flag.default_variant() {
        Some((variant, value)) => Evaluation {
            key,
            value: Some(value),
            variant: Some(variant),
            reason,
            error: None,
            metadata: &flag.metadata,
        },
        None => Evaluation {
            key,
            value: None,
            variant: None,
            reason: Reason::Default,
            error: None,
            metadata: &flag.metadata,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn flag_set_is_send_and_sync() {
        assert_send_sync::<FlagSet>();
    }

    /// `errorDetails` spells the budgets out (one string each, no formatting code in the
    /// service worker's wasm): they must be these.
    #[test]
    fn the_budgets_are_the_numbers_the_messages_name() {
        assert_eq!(
            (interp::MAX_STEPS, interp::MAX_BYTES),
            (1_000_000, 1_048_576)
        );
        assert_eq!(
            (interp::MAX_BULK_STEPS, interp::MAX_BULK_BYTES),
            (2_000_000, 4_194_304)
        );
    }
}
