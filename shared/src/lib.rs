//! Flag evaluation core: loads flagd flag sets and resolves flags with OpenFeature semantics.
//!
//! - Input: the flagd flag-definition format (schema v0), unchanged — `state`,
//!   `variants`, `defaultVariant` (possibly null), `targeting` (JsonLogic with flagd's
//!   `fractional`, `sem_ver`, `starts_with`, `ends_with` and `$flagd` properties),
//!   `$evaluators`/`$ref`, flag-set and flag `metadata`.
//! - Output: OpenFeature resolution details that serialize to OFREP bodies.
//!
//! A document is loaded, validated and compiled once into a [`FlagSet`]; evaluation then
//! borrows from it. The crate does no I/O, reads no clock (the caller passes `now`) and
//! uses no randomness, so it builds for `wasm32-unknown-unknown` as is.
//!
//! # Semantics, where the references disagree
//!
//! flagd (Go) is the standard; `@openfeature/flagd-core` and json-logic-js were consulted
//! where flagd leaves room. In short:
//! - Resolution: no targeting (or `{}`) → `STATIC`; a null result → default variant,
//!   `DEFAULT`; a variant name → `TARGETING_MATCH` (also for `fractional`); `true`/`1`
//!   name the variants `"true"`/`"1"`; a name that is no variant, or an array/object
//!   result → `GENERAL`; a disabled flag → `DISABLED` with no value or variant; no
//!   default variant → `DEFAULT` with no value (the caller's default applies).
//! - JsonLogic: JavaScript coercions for `==`, `<`, arithmetic and `cat`, as
//!   json-logic-js; but, as flagd (Go) and flagd-core, an empty object is falsy and a
//!   `var` that finds `null` yields its default. `>`/`>=` take a third argument
//!   ("between") like `<`/`<=`.
//! - flagd operators return null on bad input; `fractional` uses bucketing v2 over the
//!   UTF-8 bytes of the key (a string; any other non-null bucketing value makes the rule
//!   null, as in flagd and flagd-core), clamps negative weights to 0 and accepts a single
//!   bucket; `sem_ver` follows Go's `x/mod/semver` (partial versions, build metadata
//!   ignored, one `v`/`V` prefix) and reads numbers as flagd does (`1.2` → "1.2").
//! - The default load refuses a set with any error (what cannot be evaluated) and warns
//!   about schema deviations; [`LoadOptions::strict`] refuses those too. That is
//!   validation. [`LoadOptions::lenient()`] is how flagd reads a file: a flag with errors is
//!   kept and evaluates to `PARSE_ERROR`, every other flag works, and
//!   [`FlagSet::flag_errors`] lists the broken ones with their errors' paths. The default
//!   feature `diagnostics` carries every error's message and JSON path and the warnings;
//!   without it (the service worker) the same documents are refused or isolated the same
//!   way, with one fixed message, and none warn — evaluation is identical — except that the
//!   load-time worst-case step bound (see Budgets), validation's check, is left out.
//!
//! # Budgets
//!
//! Flag documents are written by people, contexts by anyone; neither may make one
//! evaluation, one bulk call or one load unbounded in work or memory. The limits (the same
//! in every build, so the edge and the service worker agree):
//! - **Steps per flag evaluation: 1,000,000** — one per node visited and one per element of
//!   a literal or context array read (`in`, stringifying); about 25 ms of CPU in workerd.
//! - **Bytes built per flag evaluation: 1 MiB** — string bytes plus 16 per array element of
//!   every value an operation builds (`cat`, `substr`, `map`, `filter`, `merge`, `missing`,
//!   arrays with operations inside) or a `var` copies out of `map`/`reduce` data. Sixteen
//!   times the largest OFREP body; a doubling accumulator stops after ~20 rounds, and no
//!   value much larger than the budget is ever allocated.
//! - **Per bulk evaluation ([`FlagSet::evaluate_all`]): 2,000,000 steps and 4 MiB** across
//!   its flags, in key order: one runaway flag does not take the rest of the set down, two
//!   spend it; later flags that need the interpreter answer `GENERAL`.
//! - **Compiled size, `$ref`s expanded: 100,000 nodes per flag, 300,000 per set.** Every
//!   document within the edge's 512 KiB write limit fits without expansion; only `$ref`
//!   fan-out reaches it.
//! - **Worst-case steps, known at load time: 1,000,000 per flag, 2,000,000 per set** — each
//!   node once, literal arrays by length, the body of an iteration over a literal array
//!   once per element (iterations over context arrays count as empty). Checked with the
//!   `diagnostics` feature only (validation: the CLI, the edge); the service worker loads
//!   documents the edge validated, and the runtime budgets hold there all the same.
//!
//! An evaluation over a budget answers `GENERAL` with `errorDetails` naming it. What is over
//! a compile-time budget is an error at the JSON path of the flag that crossed it: the
//! default load refuses the set, a lenient load keeps the flag as broken (`PARSE_ERROR`).
//! Once the set's compiled size is spent, every later flag with targeting is broken too.
//!
//! ```
//! use edgeflags_core::{Context, FlagSet, LoadOptions, Reason};
//!
//! let doc = r#"{"flags": {"banner": {"state": "ENABLED",
//!     "variants": {"on": true, "off": false}, "defaultVariant": "off",
//!     "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on"]}}}}"#;
//! let set = FlagSet::from_json_str(doc, LoadOptions::default()).unwrap().set;
//! let ctx = Context::from_json_str(r#"{"email": "ann@example.com"}"#).unwrap();
//! let eval = set.evaluate("banner", &ctx, 1_700_000_000);
//! assert_eq!(eval.variant, Some("on"));
//! assert_eq!(eval.reason, Reason::TargetingMatch);
//! assert_eq!(
//!     serde_json::to_string(&eval).unwrap(),
//!     r#"{"key":"banner","value":true,"variant":"on","reason":"TARGETING_MATCH","metadata":{}}"#
//! );
//! ```

/// Records a load warning. Without the `diagnostics` feature the call, and the building of
/// its message, compile to nothing.
macro_rules! diag_warn {
    ($sink:expr, $path:expr, $msg:expr $(,)?) => {
        if cfg!(feature = "diagnostics") {
            $sink.warn($path, $msg)
        }
    };
}

/// Records a load error. Without the `diagnostics` feature the document is refused all the
/// same, with one fixed message instead of this one and its path.
macro_rules! diag_error {
    ($sink:expr, $path:expr, $msg:expr $(,)?) => {
        if cfg!(feature = "diagnostics") {
            $sink.error($path, $msg)
        } else {
            $sink.error_without_details()
        }
    };
}

mod context;
mod error;
mod evaluation;
mod flagset;
mod keyindex;
mod load;
mod logic;
pub mod ofrep;
mod path;

pub use context::{context_fingerprint, Context};
pub use error::{Diagnostic, Error, ErrorCode, EvalError, LoadError};
pub use evaluation::{BulkEvaluation, Evaluation, Reason};
pub use flagset::FlagSet;
pub use load::{LoadOptions, Loaded};
pub use logic::fractional::murmur3_x86_32;
pub use logic::value::parse_decimal;
