//! Compiles JsonLogic (as JSON) into the typed AST, resolving `$ref`s and reporting
//! problems with their JSON path.
//!
//! Only what cannot be evaluated is an error (an unknown operator, a `$ref` to a missing
//! evaluator, a `$ref` cycle, nesting beyond [`MAX_DEPTH`]). Rules that flagd evaluates,
//! but to null, or that its JSON schema rejects, are warnings, so that existing flagd
//! files keep working; strict loading promotes them to errors.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::fractional::{weight_from_f64, Murmur3, MAX_TOTAL_WEIGHT};
use super::interp::{MAX_BULK_STEPS, MAX_STEPS};
use super::semver::{self, SemVerOp};
use super::value::js_number_string;
use super::{FastFractional, FracVariant, Fractional, IterOp, Node, Op, Var, VarLit, VarPath};
use super::{MAX_DEPTH, MAX_NODES, MAX_SET_NODES};
use crate::error::Diagnostic;
use crate::load::json_size;
use crate::path::JsonPath;

/// Compiles the targeting of every flag of one document, sharing `$evaluators`.
pub(crate) struct Compiler<'d> {
    evaluators: Option<&'d Map<String, Value>>,
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
    /// `$ref` names being expanded, innermost last: detects cycles.
    ref_stack: Vec<String>,
    /// Evaluators referenced at least once.
    /// Names of the evaluators referenced (values unused). A JSON map rather than a
    /// `BTreeSet`: the same ordered map the documents use, so no second B-tree is compiled.
    pub(crate) used: Map<String, Value>,
    /// Nodes of the targeting being compiled.
    nodes: usize,
    too_big: bool,
    /// Nodes compiled for the flags (and evaluators) before it: the set's compiled size.
    pub(crate) set_nodes: usize,
    /// [`worst_steps`] of the flags before it that are within the per-flag limit.
    set_steps: f64,
    /// The current flag's variant names: string literals equal to one share its
    /// allocation.
    variant_names: Vec<Arc<str>>,
    /// The current flag's key (`$flagd.flagKey`, the start of the default bucketing key).
    flag_key: String,
}

impl<'d> Compiler<'d> {
    pub(crate) fn new(evaluators: Option<&'d Map<String, Value>>) -> Self {
        Self {
            evaluators,
            errors: Vec::new(),
            warnings: Vec::new(),
            ref_stack: Vec::new(),
            used: Map::new(),
            nodes: 0,
            too_big: false,
            set_nodes: 0,
            set_steps: 0.0,
            variant_names: Vec::new(),
            flag_key: String::new(),
        }
    }

    /// Sets the key and variant names of the flag whose targeting is compiled next.
    pub(crate) fn set_flag(&mut self, key: &str, names: Vec<Arc<str>>) {
        self.flag_key = key.to_owned();
        self.variant_names = names;
    }

    fn intern(&self, s: &str) -> Arc<str> {
        self.variant_names
            .iter()
            .find(|n| &***n == s)
            .map_or_else(|| Arc::from(s), Arc::clone)
    }

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

    /// Compiles one flag's targeting; `path` points at it. Compilation stops (with an error
    /// at `path`) when the targeting expands beyond [`MAX_NODES`] or the set beyond
    /// [`MAX_SET_NODES`]; a flag whose [`worst_steps`] exceed [`MAX_STEPS`], or with which
    /// the set's exceed [`MAX_BULK_STEPS`], is refused too.
    pub(crate) fn compile_targeting(&mut self, targeting: &Value, path: &mut JsonPath) -> Node {
        self.nodes = 0;
        self.too_big = false;
        let node = self.compile(targeting, path, 0);
        self.set_nodes += self.nodes;
        if self.too_big {
            diag_error!(
                self,
                path,
                if self.nodes > MAX_NODES {
                    format!(
                        "targeting expands to more than {MAX_NODES} operations (check $ref use)"
                    )
                } else {
                    format!("with this targeting the flag set expands to more than {MAX_SET_NODES} operations (check $ref use)")
                },
            );
            return node;
        }
        // Validation's check: without `diagnostics` (the service worker, which loads documents
        // the edge validated) it is left out, saving its code; the runtime budgets still hold.
        if !cfg!(feature = "diagnostics") {
            return node;
        }
        let steps = worst_steps(&node);
        let set_steps = self.set_steps + steps;
        if steps > f64::from(MAX_STEPS) {
            diag_error!(
                self,
                path,
                format!("targeting can take {steps} evaluation steps, more than the limit of {MAX_STEPS} (iterations over literal arrays multiply)"),
            );
        } else if set_steps > f64::from(MAX_BULK_STEPS) {
            diag_error!(
                self,
                path,
                format!("with this targeting the flags can take {set_steps} evaluation steps in one bulk evaluation, more than its budget of {MAX_BULK_STEPS}"),
            );
        } else {
            self.set_steps = set_steps;
        }
        node
    }

    /// Counts `n` more nodes; whether the targeting is (now) over a node budget.
    fn count(&mut self, n: usize) -> bool {
        self.nodes += n;
        self.too_big |= self.nodes > MAX_NODES || self.set_nodes + self.nodes > MAX_SET_NODES;
        self.too_big
    }

    fn compile(&mut self, v: &Value, path: &mut JsonPath, depth: usize) -> Node {
        if self.count(1) {
            return Node::Null;
        }
        if depth > MAX_DEPTH {
            diag_error!(
                self,
                path,
                format!("targeting is nested deeper than {MAX_DEPTH} levels"),
            );
            return Node::Null;
        }
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Num(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Node::Str(self.intern(s)),
            Value::Array(items) => {
                let nodes: Vec<Node> = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| path.with_index(i, |p| self.compile(item, p, depth + 1)))
                    .collect();
                if nodes.iter().all(is_literal) {
                    Node::Json(Box::new(v.clone()))
                } else {
                    Node::Array(nodes.into())
                }
            }
            Value::Object(map) => {
                if let Some(name) = map.get("$ref") {
                    return self.compile_ref(map, name, path, depth);
                }
                let mut entries = map.iter();
                match (entries.next(), entries.next()) {
                    (Some((op, args)), None) => {
                        path.with_key(op, |p| self.compile_op(op, args, p, depth + 1))
                    }
                    (None, _) => Node::Json(Box::new(v.clone())),
                    (Some(_), Some(_)) => {
                        // A literal object is copied whole: its values count as nodes, or
                        // one copied through many `$ref`s would escape the budgets.
                        if self.count(json_size(v).0 - 1) {
                            return Node::Null;
                        }
                        diag_warn!(self,
                            path,
                            format!(
                                "an object with {} keys is a literal value in JsonLogic, not an operation",
                                map.len()
                            ),
                        );
                        Node::Json(Box::new(v.clone()))
                    }
                }
            }
        }
    }

    /// `{"$ref": "name"}` is replaced by the evaluator's body, as flagd does. Extra keys
    /// next to `$ref` are merged with the body's, which is what flagd's textual
    /// substitution amounts to.
    fn compile_ref(
        &mut self,
        map: &Map<String, Value>,
        name: &Value,
        path: &mut JsonPath,
        depth: usize,
    ) -> Node {
        let Some(name) = name.as_str() else {
            path.with_key("$ref", |p| {
                diag_error!(self, p, "$ref must name an evaluator (a string)")
            });
            return Node::Null;
        };
        let Some(body) = self.evaluators.and_then(|e| e.get(name)) else {
            path.with_key("$ref", |p| {
                diag_error!(
                    self,
                    p,
                    format!("$ref to missing evaluator \"{name}\" (no such key in $evaluators)"),
                )
            });
            return Node::Null;
        };
        if self.ref_stack.iter().any(|n| n == name) {
            let chain = self.ref_stack.join(" -> ");
            path.with_key("$ref", |p| {
                diag_error!(self, p, format!("$ref cycle: {chain} -> {name}"))
            });
            return Node::Null;
        }
        self.used.insert(name.to_owned(), Value::Null);
        // Problems inside an evaluator are reported at the evaluator, once, however many
        // flags use it (the loader removes duplicates).
        let mut eval_path = JsonPath::new();
        eval_path.push_key("$evaluators");
        eval_path.push_key(name);
        self.ref_stack.push(name.to_owned());
        let node = if map.len() > 1 {
            // Inserts, not a collect (building a map from an iterator sorts its entries: a
            // second sort in the wasm) nor clone-then-remove (B-tree removal code in the wasm).
            let mut merged: Map<String, Value> = Map::new();
            for (k, v) in map.iter().filter(|(k, _)| *k != "$ref") {
                merged.insert(k.clone(), v.clone());
            }
            if let Value::Object(body) = body {
                for (k, v) in body {
                    merged.insert(k.clone(), v.clone());
                }
            }
            diag_warn!(
                self,
                path,
                "keys next to $ref are merged with the evaluator's body",
            );
            self.compile(&Value::Object(merged), path, depth + 1)
        } else {
            self.compile(body, &mut eval_path, depth + 1)
        };
        self.ref_stack.pop();
        node
    }

    fn compile_args(&mut self, args: &Value, path: &mut JsonPath, depth: usize) -> Vec<Node> {
        match args {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| path.with_index(i, |p| self.compile(item, p, depth)))
                .collect(),
            // json-logic-js: a non-array argument is a single argument.
            other => vec![self.compile(other, path, depth)],
        }
    }

    fn compile_op(&mut self, name: &str, args: &Value, path: &mut JsonPath, depth: usize) -> Node {
        match name {
            "var" => self.compile_var(args, path, depth),
            "if" | "?:" => Node::If(self.compile_args(args, path, depth).into()),
            "and" => Node::And(self.compile_args(args, path, depth).into()),
            "or" => Node::Or(self.compile_args(args, path, depth).into()),
            "map" => self.compile_iter(IterOp::Map, args, path, depth),
            "filter" => self.compile_iter(IterOp::Filter, args, path, depth),
            "reduce" => self.compile_iter(IterOp::Reduce, args, path, depth),
            "all" => self.compile_iter(IterOp::All, args, path, depth),
            "none" => self.compile_iter(IterOp::None, args, path, depth),
            "some" => self.compile_iter(IterOp::Some, args, path, depth),
            "fractional" => self.compile_fractional(args, path, depth),
            _ => match Op::from_name(name) {
                Some(op) => {
                    self.check_custom_op(op, args, path);
                    fuse(op, self.compile_args(args, path, depth))
                }
                None => {
                    diag_error!(self, path, format!("unknown JsonLogic operator \"{name}\""));
                    Node::Null
                }
            },
        }
    }

    fn compile_iter(
        &mut self,
        op: IterOp,
        args: &Value,
        path: &mut JsonPath,
        depth: usize,
    ) -> Node {
        Node::Iter(op, self.compile_args(args, path, depth).into())
    }

    fn compile_var(&mut self, args: &Value, path: &mut JsonPath, depth: usize) -> Node {
        let items: Vec<&Value> = match args {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let var_path = match items.first() {
            None | Some(Value::Null) => VarPath::Whole,
            Some(Value::String(s)) if s.is_empty() => VarPath::Whole,
            Some(Value::String(s)) => VarPath::Static(split_path(s)),
            Some(Value::Number(n)) => VarPath::Static(split_path(&js_number_string(
                n.as_f64().unwrap_or(f64::NAN),
            ))),
            Some(other) => {
                let at_index = matches!(args, Value::Array(_));
                let node = if at_index {
                    path.with_index(0, |p| self.compile(other, p, depth))
                } else {
                    self.compile(other, path, depth)
                };
                VarPath::Dynamic(node)
            }
        };
        let default = items
            .get(1)
            .map(|d| path.with_index(1, |p| self.compile(d, p, depth)));
        Node::Var(Box::new(Var {
            path: var_path,
            default,
        }))
    }

    /// Load-time checks of flagd's string and version operators with literal arguments:
    /// flagd evaluates misuse to null, which is worth a warning.
    fn check_custom_op(&mut self, op: Op, args: &Value, path: &mut JsonPath) {
        let items: &[Value] = match args {
            Value::Array(items) => items,
            _ => std::slice::from_ref(args),
        };
        match op {
            Op::StartsWith | Op::EndsWith if items.len() != 2 => {
                diag_warn!(self,
                    path,
                    format!(
                        "takes exactly 2 arguments (a string and a {}), not {}; it evaluates to null",
                        if op == Op::StartsWith { "prefix" } else { "suffix" },
                        items.len()
                    ),
                );
            }
            Op::SemVer => {
                if items.len() != 3 {
                    diag_warn!(self,
                        path,
                        format!(
                            "sem_ver takes exactly 3 arguments (version, operator, version), not {}; it evaluates to null",
                            items.len()
                        ),
                    );
                    return;
                }
                if let Some(Value::String(o)) = items.get(1) {
                    if SemVerOp::parse(o).is_none() {
                        path.with_index(1, |p| {
                            diag_warn!(self,
                                p,
                                format!(
                                    "sem_ver operator \"{o}\" is not one of = != < <= > >= ^ ~; it evaluates to null"
                                ),
                            )
                        });
                    }
                }
                for i in [0, 2] {
                    if let Some(Value::String(v)) = items.get(i) {
                        if semver::parse(v).is_none() {
                            path.with_index(i, |p| {
                                diag_warn!(self,
                                    p,
                                    format!("\"{v}\" is not a semantic version; sem_ver evaluates to null"),
                                )
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn compile_fractional(&mut self, args: &Value, path: &mut JsonPath, depth: usize) -> Node {
        let nodes = self.compile_args(args, path, depth);
        let items: &[Value] = match args {
            Value::Array(items) => items,
            _ => std::slice::from_ref(args),
        };
        // The first argument is a bucketing-key expression unless it is a literal array
        // (then it is already a bucket and the key is flag key + targeting key).
        let (key_arg, buckets) = match items.first() {
            Some(Value::Array(_)) | None => (None, items),
            Some(first) => (Some(first), items.get(1..).unwrap_or(&[])),
        };
        if buckets.is_empty() {
            diag_warn!(
                self,
                path,
                "fractional needs at least one bucket; flagd evaluates it to null",
            );
        }
        let offset = usize::from(key_arg.is_some());
        let mut variants = Vec::with_capacity(buckets.len());
        let mut weights = Vec::with_capacity(buckets.len());
        let mut total: u64 = 0;
        let mut literal = true;
        for (i, bucket) in buckets.iter().enumerate() {
            path.push_index(i + offset);
            if cfg!(feature = "diagnostics") {
                if let Some(w) = bucket.get(1).and_then(Value::as_f64).filter(|w| *w < 0.0) {
                    self.warn(
                        path,
                        format!("the weight {w} is negative; flagd counts it as 0"),
                    );
                }
            }
            match check_bucket(bucket, |s| self.intern(s)) {
                BucketCheck::Literal(variant, weight) => {
                    total = total.saturating_add(weight);
                    variants.push(variant);
                    weights.push(weight);
                }
                BucketCheck::Dynamic => literal = false,
                BucketCheck::Invalid(message) => {
                    literal = false;
                    diag_warn!(
                        self,
                        path,
                        format!("{message}; flagd evaluates this fractional to null"),
                    );
                }
            }
            path.pop();
        }
        if literal && !buckets.is_empty() {
            if total > MAX_TOTAL_WEIGHT {
                diag_warn!(self,
                    path,
                    format!("the weights sum to {total}, more than {MAX_TOTAL_WEIGHT}; flagd evaluates this fractional to null"),
                );
            } else if total == 0 {
                diag_warn!(
                    self,
                    path,
                    "all weights are 0; flagd evaluates this fractional to null",
                );
            }
        }
        let fast = (literal && !buckets.is_empty() && (1..=MAX_TOTAL_WEIGHT).contains(&total))
            .then(|| FastFractional {
                prefix: Murmur3::new().write(self.flag_key.as_bytes()),
                variants: variants.into(),
                weights: weights.into(),
                total,
            });
        Node::Fractional(Box::new(Fractional {
            args: nodes.into(),
            key_expr: key_arg.is_some(),
            fast,
        }))
    }
}

/// Why a literal weight is refused (one message for every case: one string in the wasm).
const WEIGHT_RULE: &str = "a weight must be a whole number, at most 2147483647";

enum BucketCheck {
    Literal(FracVariant, u64),
    Dynamic,
    Invalid(String),
}

/// Classifies one `[variant, weight]` bucket of a `fractional`.
fn check_bucket(bucket: &Value, intern: impl Fn(&str) -> Arc<str>) -> BucketCheck {
    let Value::Array(parts) = bucket else {
        return if bucket.is_object() {
            BucketCheck::Dynamic
        } else {
            BucketCheck::Invalid("a bucket must be an array [variant, weight]".into())
        };
    };
    let variant = match parts.first() {
        None => return BucketCheck::Invalid("a bucket must not be empty".into()),
        Some(Value::String(s)) => FracVariant::Str(intern(s)),
        Some(Value::Bool(b)) => FracVariant::Bool(*b),
        Some(Value::Number(n)) => FracVariant::Num(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::Null) => FracVariant::Null,
        Some(Value::Object(_)) => return BucketCheck::Dynamic,
        Some(Value::Array(_)) => {
            return BucketCheck::Invalid(
                "a bucket's variant must be a string, boolean, number or null".into(),
            )
        }
    };
    let weight = match parts.get(1) {
        // A bucket without a weight (or with null) weighs 1.
        None | Some(Value::Null) => 1,
        Some(Value::Number(n)) => match n.as_f64().and_then(weight_from_f64) {
            Some(w) => w,
            None => return BucketCheck::Invalid(WEIGHT_RULE.into()),
        },
        Some(Value::Object(_)) => return BucketCheck::Dynamic,
        Some(_) => return BucketCheck::Invalid(WEIGHT_RULE.into()),
    };
    BucketCheck::Literal(variant, weight)
}

/// Builds an operator node, fusing `op(var, literal)` and `op(literal, var)`.
fn fuse(op: Op, mut args: Vec<Node>) -> Node {
    if op.is_fusable() && args.len() == 2 {
        let var_first =
            matches!(args.first(), Some(Node::Var(_))) && args.get(1).is_some_and(is_literal);
        let var_second =
            args.first().is_some_and(is_literal) && matches!(args.get(1), Some(Node::Var(_)));
        if var_first || var_second {
            let (first, second) = (args.remove(0), args.remove(0));
            let (var, lit) = if var_first {
                (first, second)
            } else {
                (second, first)
            };
            if let Node::Var(var) = var {
                return Node::VarLit(Box::new(VarLit {
                    op,
                    var: *var,
                    lit,
                    var_first,
                }));
            }
        }
    }
    Node::Op(op, args.into())
}

fn is_literal(node: &Node) -> bool {
    matches!(
        node,
        Node::Null | Node::Bool(_) | Node::Num(_) | Node::Str(_) | Node::Json(_)
    )
}

fn split_path(s: &str) -> Box<[Box<str>]> {
    s.split('.').map(Box::from).collect()
}

/// The strings a compiled targeting can return as its result, for checking them
/// against the flag's variants at load time. Only literal results are followed.
pub(crate) fn literal_results<'n>(node: &'n Node, out: &mut Vec<&'n str>) {
    match node {
        Node::Str(s) => out.push(s),
        Node::If(args) => {
            for (i, branch) in args.iter().enumerate() {
                let is_condition = i % 2 == 0 && i + 1 < args.len();
                if !is_condition {
                    literal_results(branch, out);
                }
            }
        }
        Node::Fractional(f) => {
            if let Some(fast) = &f.fast {
                for v in fast.variants.iter() {
                    if let FracVariant::Str(s) = v {
                        out.push(s);
                    }
                }
            }
        }
        _ => {}
    }
}

/// The most steps an evaluation of `node` can take when the context's arrays are empty: an
/// upper bound that counts every node once (every `if` branch, no short circuit), a literal
/// array by its length, and the body of `map`/`filter`/`reduce`/`all`/`none`/`some` once per
/// element of a literal source. Iterations over context arrays are left out (the context is
/// unknown at load time; the interpreter's budgets bound them), so a flag over the limit by
/// this count can exceed it on any request.
pub(crate) fn worst_steps(node: &Node) -> f64 {
    // f64: no overflow to check (a sum past 2^53 is over every budget anyway), small code.
    let all = |nodes: &[Node]| nodes.iter().map(worst_steps).sum::<f64>();
    let var = |v: &Var| {
        let path = match &v.path {
            VarPath::Dynamic(n) => worst_steps(n),
            _ => 0.0,
        };
        path + v.default.as_ref().map_or(0.0, worst_steps)
    };
    1.0 + match node {
        Node::Json(v) => v.as_array().map_or(0, Vec::len) as f64,
        Node::Array(n) | Node::If(n) | Node::And(n) | Node::Or(n) | Node::Op(_, n) => all(n),
        Node::Var(v) => var(v),
        Node::VarLit(f) => var(&f.var) + worst_steps(&f.lit) - 1.0,
        Node::Iter(_, args) => {
            // The body once per element of a literal source, instead of once.
            let len = match args.first() {
                Some(Node::Json(v)) => v.as_array().map_or(0, Vec::len),
                Some(Node::Array(items)) => items.len(),
                _ => 0,
            };
            all(args) + (len as f64 - 1.0) * args.get(1).map_or(0.0, worst_steps)
        }
        Node::Fractional(f) => all(&f.args),
        Node::Null | Node::Bool(_) | Node::Num(_) | Node::Str(_) => 0.0,
    }
}
