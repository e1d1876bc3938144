//! JsonLogic targeting, compiled: the typed AST, its compiler and its interpreter.
//!
//! Targeting rules are compiled once, when a flag set is loaded: operator names are
//! resolved to an enum, `var` paths are split into segments, literals are converted to
//! their runtime form, and `fractional` rules with literal buckets are precomputed. The
//! interpreter then walks this tree without looking at JSON again.

pub(crate) mod compile;
#[cfg(any(test, feature = "compact-float-parse"))]
pub(crate) mod decimal;
pub(crate) mod fractional;
pub(crate) mod interp;
pub(crate) mod semver;
pub(crate) mod value;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::Value;

/// Deepest nesting of targeting the compiler accepts (counting `$ref` expansions).
/// The interpreter recurses along the same tree, so this also bounds its stack use.
pub(crate) const MAX_DEPTH: usize = 96;

/// Most AST nodes one flag's targeting may compile to, so that `$ref` chains that
/// reference an evaluator many times cannot blow up exponentially.
pub(crate) const MAX_NODES: usize = 100_000;

/// Most AST nodes a whole flag set may compile to, `$ref`s expanded (every flag's targeting,
/// then the evaluators no flag uses). Any document within the admin write limit (512 KiB)
/// compiles to fewer without expansion (a node takes at least two bytes of JSON, `1,`), so
/// only `$ref` fan-out reaches it; compiling this many takes tens of milliseconds. Without
/// it, 300 flags each expanding to just under [`MAX_NODES`] took 5.5 s and 300 MB to store.
pub(crate) const MAX_SET_NODES: usize = 300_000;

/// A compiled JsonLogic expression.
#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Num(f64),
    /// Shares its allocation with the flag's variant name when equal, so that the
    /// final variant lookup is a pointer comparison.
    Str(Arc<str>),
    /// A literal array or object containing no operations.
    Json(Box<Value>),
    /// An array literal with operations inside; evaluates element-wise.
    Array(Box<[Node]>),
    Var(Box<Var>),
    If(Box<[Node]>),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Op(Op, Box<[Node]>),
    /// A binary operator between a `var` and a literal, fused: the most common shape of
    /// a targeting condition (`{"ends_with": [{"var": "email"}, "@example.com"]}`) runs
    /// without dispatching on its two operands.
    VarLit(Box<VarLit>),
    /// `map`, `filter`, `reduce`, `all`, `none`, `some`: the second argument is
    /// evaluated once per element, with the element as data.
    Iter(IterOp, Box<[Node]>),
    Fractional(Box<Fractional>),
}

/// Operators whose arguments are all evaluated before the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    StrictEq,
    Ne,
    StrictNe,
    Not,
    NotNot,
    Lt,
    Le,
    Gt,
    Ge,
    Max,
    Min,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Cat,
    Substr,
    In,
    Merge,
    Missing,
    MissingSome,
    Log,
    StartsWith,
    EndsWith,
    SemVer,
}

impl Op {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "==" => Self::Eq,
            "===" => Self::StrictEq,
            "!=" => Self::Ne,
            "!==" => Self::StrictNe,
            "!" => Self::Not,
            "!!" => Self::NotNot,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "max" => Self::Max,
            "min" => Self::Min,
            "+" => Self::Add,
            "-" => Self::Sub,
            "*" => Self::Mul,
            "/" => Self::Div,
            "%" => Self::Mod,
            "cat" => Self::Cat,
            "substr" => Self::Substr,
            "in" => Self::In,
            "merge" => Self::Merge,
            "missing" => Self::Missing,
            "missing_some" => Self::MissingSome,
            "log" => Self::Log,
            "starts_with" => Self::StartsWith,
            "ends_with" => Self::EndsWith,
            "sem_ver" => Self::SemVer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IterOp {
    Map,
    Filter,
    Reduce,
    All,
    None,
    Some,
}

/// See [`Node::VarLit`].
#[derive(Debug)]
pub(crate) struct VarLit {
    pub(crate) op: Op,
    pub(crate) var: Var,
    /// A literal node ([`Node::Null`], `Bool`, `Num`, `Str` or `Json`).
    pub(crate) lit: Node,
    /// Whether the `var` is the first operand.
    pub(crate) var_first: bool,
}

impl Op {
    /// Binary operators that [`Node::VarLit`] can fuse.
    pub(crate) fn is_fusable(self) -> bool {
        matches!(
            self,
            Op::Eq
                | Op::Ne
                | Op::StrictEq
                | Op::StrictNe
                | Op::Lt
                | Op::Le
                | Op::Gt
                | Op::Ge
                | Op::In
                | Op::StartsWith
                | Op::EndsWith
        )
    }
}

/// `{"var": [path, default]}`.
#[derive(Debug)]
pub(crate) struct Var {
    pub(crate) path: VarPath,
    pub(crate) default: Option<Node>,
}

#[derive(Debug)]
pub(crate) enum VarPath {
    /// `""`, `null` or no path: the whole data object.
    Whole,
    /// A literal path, split at dots once at load time.
    Static(Box<[Box<str>]>),
    /// A path computed by an expression.
    Dynamic(Node),
}

/// A compiled `fractional`.
#[derive(Debug)]
pub(crate) struct Fractional {
    /// The operator's arguments, for the general path (flagd's exact rules).
    pub(crate) args: Box<[Node]>,
    /// Whether `args[0]` is a bucketing-key expression rather than a literal bucket.
    pub(crate) key_expr: bool,
    /// Precomputed buckets when every distribution is a literal `[variant, weight]`.
    pub(crate) fast: Option<FastFractional>,
}

/// Literal buckets with their weights checked and summed at load time.
#[derive(Debug)]
pub(crate) struct FastFractional {
    /// MurmurHash3 state after the flag key: the default bucketing key is
    /// `flagKey + targetingKey`.
    pub(crate) prefix: fractional::Murmur3,
    pub(crate) variants: Box<[FracVariant]>,
    pub(crate) weights: Box<[u64]>,
    pub(crate) total: u64,
}

/// What a bucket resolves to: flagd accepts strings, booleans, numbers and null.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FracVariant {
    Str(Arc<str>),
    Bool(bool),
    Num(f64),
    Null,
}
