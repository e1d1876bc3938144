//! Loading a flagd flag-set document: validation, `$ref` resolution and compilation into
//! a [`FlagSet`].
//!
//! flagd evaluates files that its own JSON schema rejects, and "existing flagd files work
//! unchanged" is a requirement, so only what cannot be evaluated is an error (malformed
//! JSON, variants that are not an object, a default variant that names no variant, an
//! unknown operator, a `$ref` to a missing evaluator, …). Schema-only deviations are
//! warnings with their path; [`LoadOptions::strict`] promotes them to errors.
//!
//! By default a set with any error is refused whole, and every error is listed: that is
//! what validation (the CLI's `validate`, the edge's admin writes) wants. A lenient load
//! ([`LoadOptions::lenient()`]) is what flagd does when it reads a file: a flag with errors is
//! kept, carries them, and evaluates to `PARSE_ERROR`; every other flag works. Only errors
//! outside any one flag (not JSON, `flags` missing or not an object/array, `$evaluators` not
//! an object, a flags-array item without a key, nesting too deep) still refuse the set.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::context::kind_name;
use crate::error::{Diagnostic, LoadError};
use crate::flagset::{Flag, FlagSet, RootFractional};
use crate::keyindex::{sort_by_str_key, KeyIndex};
use crate::logic::compile::{literal_results, Compiler};
use crate::path::JsonPath;

/// Deepest document accepted. serde_json's parser already stops at 128 levels; a
/// document built in code is held to the same bound, so nothing recurses without limit.
pub(crate) const MAX_DOC_DEPTH: usize = 128;

/// Largest integer a JSON number carries exactly in JavaScript (2^53 − 1); the flagd
/// schema bounds numeric variants by it.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// How strictly to load. The default refuses a set with any error (validation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Refuse the set on any warning too (schema deviations flagd would still evaluate).
    /// Takes precedence over `lenient`.
    pub strict: bool,
    /// Keep a flag whose definition has errors instead of refusing the set, as flagd does
    /// when it reads a file: the flag evaluates to `PARSE_ERROR` (reason `ERROR`) with its
    /// errors in `errorDetails`, and [`FlagSet::flag_errors`] lists it. Errors outside any
    /// one flag still refuse the set.
    pub lenient: bool,
}

impl LoadOptions {
    /// Options with warnings promoted to errors.
    pub fn strict() -> Self {
        Self {
            strict: true,
            lenient: false,
        }
    }

    /// Options for reading a file to evaluate it, as flagd does: one broken flag does not
    /// take the set down (see [`LoadOptions::lenient`](LoadOptions#structfield.lenient)).
    pub fn lenient() -> Self {
        Self {
            strict: false,
            lenient: true,
        }
    }
}

/// A loaded flag set and the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    /// The compiled flag set.
    pub set: FlagSet,
    /// Schema deviations that flagd evaluates anyway, with their paths.
    pub warnings: Vec<Diagnostic>,
}

/// How many JSON values `v` holds (itself included) and how deep it nests (a scalar or an
/// empty array or object is depth 0). Iterative, so it is safe on any input.
pub(crate) fn json_size(v: &Value) -> (usize, usize) {
    let (mut count, mut depth) = (0, 0);
    let mut stack: Vec<(&Value, usize)> = vec![(v, 0)];
    while let Some((v, d)) = stack.pop() {
        count += 1;
        depth = depth.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => {}
        }
    }
    (count, depth)
}

pub(crate) fn from_json_str(text: &str, opts: LoadOptions) -> Result<Loaded, LoadError> {
    match serde_json::from_str::<Value>(text) {
        Ok(doc) => from_value(&doc, opts),
        Err(e) => Err(LoadError {
            diagnostics: vec![Diagnostic::new("$", format!("invalid JSON: {e}"))],
            warnings: Vec::new(),
        }),
    }
}

struct Diags {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Diags {
    fn error(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(path.to_string(), message));
    }
    fn error_without_details(&mut self) {
        self.errors.push(Diagnostic::without_details());
    }
    fn warn(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.warnings
            .push(Diagnostic::new(path.to_string(), message));
    }
}

pub(crate) fn from_value(doc: &Value, opts: LoadOptions) -> Result<Loaded, LoadError> {
    let mut d = Diags {
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut path = JsonPath::new();
    if json_size(doc).1 > MAX_DOC_DEPTH {
        diag_error!(
            d,
            &path,
            format!("the document is nested deeper than {MAX_DOC_DEPTH} levels"),
        );
        return finish(d, opts, Vec::new(), Map::new());
    }
    let Value::Object(root) = doc else {
        diag_error!(
            d,
            &path,
            format!("a flag set must be a JSON object, not {}", kind_name(doc)),
        );
        return finish(d, opts, Vec::new(), Map::new());
    };

    let evaluators = match root.get("$evaluators") {
        None | Some(Value::Null) => None,
        Some(Value::Object(e)) => Some(e),
        Some(other) => {
            path.with_key("$evaluators", |p| {
                diag_error!(
                    d,
                    p,
                    format!("$evaluators must be an object, not {}", kind_name(other)),
                )
            });
            None
        }
    };
    if let Some(evaluators) = evaluators {
        for (name, body) in evaluators {
            if !body.is_object() {
                path.with_key("$evaluators", |p| {
                    p.with_key(name, |p| {
                        diag_warn!(
                            d,
                            p,
                            format!(
                                "an evaluator should be a JsonLogic object, not {}",
                                kind_name(body)
                            ),
                        )
                    })
                });
            }
        }
    }

    let set_metadata = match root.get("metadata") {
        None => Map::new(),
        Some(m) => path.with_key("metadata", |p| scalar_metadata(m, p, &mut d)),
    };

    let mut compiler = Compiler::new(evaluators);
    let mut flags = Vec::new();
    let lenient = opts.lenient && !opts.strict;
    let mut load = |key: &str, def: &Value, p: &mut JsonPath, d: &mut Diags| {
        if let Some(flag) = load_isolated(key, def, p, &set_metadata, &mut compiler, d, lenient) {
            flags.push(flag);
        }
    };
    path.push_key("flags");
    match root.get("flags") {
        Some(Value::Object(map)) => {
            for (key, def) in map {
                path.with_key(key, |p| load(key, def, p, &mut d));
            }
        }
        Some(Value::Array(items)) => {
            // flagd also reads `flags` as an array of flags carrying a `key`.
            // Keys seen so far (values unused; the documents' own map type, see `dedup`).
            let mut seen = Map::new();
            for (i, def) in items.iter().enumerate() {
                path.with_index(i, |p| {
                    let Some(key) = def.get("key").and_then(Value::as_str) else {
                        diag_error!(d, p, "a flag in a flags array needs a string \"key\"");
                        return;
                    };
                    if seen.insert(key.to_owned(), Value::Null).is_some() {
                        diag_error!(d, p, format!("duplicate flag key \"{key}\""));
                        return;
                    }
                    load(key, def, p, &mut d);
                });
            }
        }
        None => diag_error!(d, &path, "flags is missing"),
        Some(other) => diag_error!(
            d,
            &path,
            format!(
                "flags must be an object keyed by flag key, not {}",
                kind_name(other)
            ),
        ),
    }
    path.pop();

    // Evaluators no flag references cannot break an evaluation, but their problems are
    // still worth knowing: compile them on their own and report everything as warnings.
    if let Some(evaluators) = evaluators.filter(|_| cfg!(feature = "diagnostics")) {
        let unused: Vec<(&String, &Value)> = evaluators
            .iter()
            .filter(|(name, _)| !compiler.used.contains_key(name.as_str()))
            .collect();
        let mut standalone = Compiler::new(Some(evaluators));
        // Within what is left of the set's compiled-size budget.
        standalone.set_nodes = compiler.set_nodes;
        for (name, body) in unused {
            let mut p = JsonPath::new();
            p.push_key("$evaluators");
            p.push_key(name);
            let _ = standalone.compile_targeting(body, &mut p);
        }
        for diag in standalone.errors.into_iter().chain(standalone.warnings) {
            d.warnings.push(Diagnostic::new(
                diag.path,
                format!("{} (in an evaluator no flag uses)", diag.message),
            ));
        }
    }

    d.errors.extend(compiler.errors);
    d.warnings.extend(compiler.warnings);
    finish(d, opts, flags, set_metadata)
}

fn finish(
    mut d: Diags,
    opts: LoadOptions,
    mut flags: Vec<Flag>,
    metadata: Map<String, Value>,
) -> Result<Loaded, LoadError> {
    dedup(&mut d.errors);
    dedup(&mut d.warnings);
    if opts.strict {
        d.errors.append(&mut d.warnings);
    }
    if !d.errors.is_empty() {
        return Err(LoadError {
            diagnostics: d.errors,
            warnings: d.warnings,
        });
    }
    sort_by_str_key(&mut flags, |f| &f.key);
    let index = KeyIndex::new(flags.iter().map(|f| &*f.key));
    Ok(Loaded {
        set: FlagSet {
            index,
            flags: flags.into(),
            metadata,
            empty: Map::new(),
        },
        warnings: d.warnings,
    })
}

/// Removes repeated diagnostics (an evaluator used by several flags reports once),
/// keeping the first occurrence's position.
fn dedup(list: &mut Vec<Diagnostic>) {
    // The (path, message) pairs seen, as one unambiguous string key each, in a JSON map:
    // the ordered map every document already uses, so the wasm holds one B-tree, not one
    // per key type.
    let mut seen = Map::new();
    list.retain(|x| {
        let key = format!("{}:{}{}", x.path.len(), x.path, x.message);
        seen.insert(key, Value::Null).is_none()
    });
}

/// Metadata as OFREP carries it: string, number and boolean values only.
fn scalar_metadata(v: &Value, path: &mut JsonPath, d: &mut Diags) -> Map<String, Value> {
    let Value::Object(map) = v else {
        diag_warn!(
            d,
            path,
            format!(
                "metadata must be an object, not {}; it is ignored",
                kind_name(v)
            ),
        );
        return Map::new();
    };
    let mut out = Map::new();
    for (k, item) in map {
        match item {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                out.insert(k.clone(), item.clone());
            }
            other => path.with_key(k, |p| {
                diag_warn!(d,
                    p,
                    format!(
                        "metadata values must be strings, numbers or booleans, not {}; it is left out of evaluation results",
                        kind_name(other)
                    ),
                )
            }),
        }
    }
    out
}

/// Loads one flag. In a lenient load, a flag with errors is kept and carries them (errors
/// inside an evaluator it references included) instead of failing the set.
fn load_isolated(
    key: &str,
    def: &Value,
    path: &mut JsonPath,
    set_metadata: &Map<String, Value>,
    compiler: &mut Compiler<'_>,
    d: &mut Diags,
    lenient: bool,
) -> Option<Flag> {
    let (own, shared) = (d.errors.len(), compiler.errors.len());
    let flag = load_flag(key, def, path, set_metadata, compiler, d);
    if !lenient || (d.errors.len() == own && compiler.errors.len() == shared) {
        return flag;
    }
    #[cfg(feature = "diagnostics")]
    let errors = {
        let mut errors = d.errors.split_off(own);
        errors.append(&mut compiler.errors.split_off(shared));
        dedup(&mut errors);
        errors
    };
    #[cfg(not(feature = "diagnostics"))]
    let errors = {
        // Every error is the same fixed message: nothing to keep.
        d.errors.truncate(own);
        compiler.errors.truncate(shared);
        crate::flagset::FlagErrors
    };
    let mut flag = flag.unwrap_or_else(|| Flag {
        // Not even an object: nothing of it is usable but its key.
        key: key.into(),
        enabled: true,
        variants: Box::default(),
        default_variant: None,
        targeting: None,
        root_fractional: None,
        metadata: set_metadata.clone(),
        errors: None,
    });
    flag.errors = Some(errors);
    Some(flag)
}

fn load_flag(
    key: &str,
    def: &Value,
    path: &mut JsonPath,
    set_metadata: &Map<String, Value>,
    compiler: &mut Compiler<'_>,
    d: &mut Diags,
) -> Option<Flag> {
    let Value::Object(def) = def else {
        diag_error!(
            d,
            path,
            format!("a flag must be an object, not {}", kind_name(def)),
        );
        return None;
    };
    if key.is_empty() {
        diag_warn!(
            d,
            path,
            "the flag key is empty (the flagd schema requires at least one character)",
        );
    }

    let enabled = path.with_key("state", |p| match def.get("state") {
        Some(Value::String(s)) if s == "ENABLED" => true,
        Some(Value::String(s)) if s == "DISABLED" => false,
        None => {
            diag_warn!(d, p, "state is missing; the flag is treated as ENABLED");
            true
        }
        Some(other) => {
            diag_warn!(d,
                p,
                format!("state must be \"ENABLED\" or \"DISABLED\", not {other}; the flag is treated as ENABLED"),
            );
            true
        }
    });

    let variants: Vec<(Arc<str>, Value)> =
        path.with_key("variants", |p| match def.get("variants") {
            None => Vec::new(),
            Some(Value::Object(map)) => {
                check_variant_values(map, p, d);
                let mut v: Vec<(Arc<str>, Value)> = map
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.clone()))
                    .collect();
                sort_by_str_key(&mut v, |(k, _)| k);
                v
            }
            Some(other) => {
                diag_error!(
                    d,
                    p,
                    format!("variants must be an object, not {}", kind_name(other)),
                );
                Vec::new()
            }
        });

    let default_variant = path.with_key("defaultVariant", |p| match def.get("defaultVariant") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => {
            diag_warn!(
                d,
                p,
                "an empty defaultVariant is treated as no default variant, as flagd does",
            );
            None
        }
        Some(Value::String(s)) => {
            let found = variants
                .binary_search_by(|(k, _)| (**k).cmp(s.as_str()))
                .ok();
            if found.is_none() {
                let names: Vec<&str> = variants.iter().map(|(k, _)| &**k).collect();
                diag_error!(
                    d,
                    p,
                    format!(
                        "defaultVariant \"{s}\" is not one of the variants ({})",
                        if names.is_empty() {
                            "none defined".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                );
            }
            found
        }
        Some(other) => {
            diag_error!(
                d,
                p,
                format!(
                    "defaultVariant must be a string or null, not {}",
                    kind_name(other)
                ),
            );
            None
        }
    });

    let targeting = path.with_key("targeting", |p| match def.get("targeting") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(t @ Value::Object(_)) => {
            compiler.set_flag(key, variants.iter().map(|(k, _)| Arc::clone(k)).collect());
            let node = compiler.compile_targeting(t, p);
            let mut results = Vec::new();
            literal_results(&node, &mut results);
            for name in results {
                if variants.binary_search_by(|(k, _)| (**k).cmp(name)).is_err() {
                    diag_warn!(d,
                        p,
                        format!(
                            "targeting can return \"{name}\", which is not a variant of this flag; that evaluation fails with GENERAL"
                        ),
                    );
                }
            }
            Some(node)
        }
        Some(other) => {
            diag_error!(d, p, format!("targeting must be a JsonLogic object, not {}", kind_name(other)));
            None
        }
    });

    let mut metadata = set_metadata.clone();
    if let Some(m) = def.get("metadata") {
        let own = path.with_key("metadata", |p| scalar_metadata(m, p, d));
        for (k, v) in own {
            metadata.insert(k, v);
        }
    }

    let root_fractional = targeting
        .as_ref()
        .and_then(|t| RootFractional::plan(t, &variants));
    Some(Flag {
        key: key.into(),
        enabled,
        root_fractional,
        variants: variants.into(),
        default_variant,
        targeting,
        metadata,
        errors: None,
    })
}

/// Schema checks on variant values: one type per flag (boolean, string, number or
/// object), numbers within JavaScript's safe-integer range, non-empty names.
fn check_variant_values(map: &Map<String, Value>, path: &mut JsonPath, d: &mut Diags) {
    // The kinds present, sorted and unique (at most six).
    let mut kinds: Vec<&str> = Vec::new();
    for (name, value) in map {
        path.with_key(name, |p| {
            if name.is_empty() {
                diag_warn!(d, p, "variant names must not be empty (flagd schema)");
            }
            match value {
                Value::Null | Value::Array(_) => diag_warn!(d,
                    p,
                    format!(
                        "a variant value should be a boolean, string, number or object, not {}",
                        kind_name(value)
                    ),
                ),
                Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() > MAX_SAFE_INTEGER) => {
                    diag_warn!(d, p, "a numeric variant beyond ±(2^53 − 1) loses precision in JavaScript clients");
                }
                _ => {}
            }
        });
        let kind = kind_name(value);
        if let Err(at) = kinds.binary_search(&kind) {
            kinds.insert(at, kind);
        }
    }
    if kinds.len() > 1 {
        diag_warn!(
            d,
            path,
            format!(
                "variants mix types ({}); the flagd schema requires one type per flag",
                kinds.join(", ")
            ),
        );
    }
}
