//! `edgeflags`: validate and evaluate flagd flag sets from the command line.
//!
//! ```text
//! edgeflags validate FILE [--strict | --lenient]
//! edgeflags eval --flags FILE [--flag KEY] [--context JSON|@PATH] [--now UNIX_SECONDS]
//! edgeflags push FILE [--url URL] [--token TOKEN] [--prefix /__edge] [--if-match VERSION]
//! edgeflags pull [--url URL] [--token TOKEN] [--prefix /__edge]
//! edgeflags rollout simulate --flags FILE --flag KEY --error-rate P [--control-error-rate Q]
//!     [--visitors-per-minute N] [--p99-ms X] [--delivery-success P] [--runs K] [--seed S]
//! edgeflags vapid generate
//! ```
//!
//! Scripts rely on the output and exit codes:
//! - `validate`: exit 0 and `ok: N flags, M warnings` on stdout (each warning on stderr
//!   as `warning: PATH: MESSAGE`); exit 1 with every error on stderr as
//!   `error: PATH: MESSAGE` and `invalid: N errors, M warnings` on stdout. With
//!   `--lenient` it loads as `eval` does: errors inside a flag are warnings (that flag
//!   evaluates to `PARSE_ERROR`); only an unusable file exits 1.
//! - `eval`: loads the file as flagd does (leniently): a flag whose definition has errors
//!   evaluates to `PARSE_ERROR`, the others normally. One JSON object on one line on
//!   stdout, the OFREP single-flag body (with `--flag`) or the bulk body `{"flags":[...]}`;
//!   exit 0 even when an evaluation is an error, since the error is in the JSON.
//! - `rollout simulate`: one JSON object on one line, `{"runs", "completed", "rolledBack",
//!   "running", "advancedPastFirstStage", "medianMinutesToRollback",
//!   "medianMinutesToComplete"}`: `runs` is K, the next four are shares of the runs (0..=1),
//!   the medians are minutes from the start, `null` when no run got there; exit 0.
//! - Exit 2 for unusable arguments, unreadable files, (for `eval`) a flag file that is not
//!   JSON or whose structure is unusable (e.g. `flags` is not an object), and a
//!   `--context` that is not JSON, with the reason on stderr.
//!
//! Arguments are parsed by hand: two subcommands do not justify a parser crate's compile
//! time.

mod remote;
mod simulate;
mod vapid;

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use edgeflags_core::{Context, Diagnostic, FlagSet, LoadOptions};

const USAGE: &str = "usage:
  edgeflags validate FILE [--strict | --lenient]
  edgeflags eval --flags FILE [--flag KEY] [--context JSON|@PATH] [--now UNIX_SECONDS]
  edgeflags push FILE [--url URL] [--token TOKEN] [--prefix /__edge] [--if-match VERSION]
  edgeflags pull [--url URL] [--token TOKEN] [--prefix /__edge]
  edgeflags rollout simulate --flags FILE --flag KEY --error-rate P [--control-error-rate Q]
      [--visitors-per-minute N] [--p99-ms X] [--delivery-success P] [--runs K] [--seed S]
  edgeflags vapid generate

validate  check a flagd flag-set file; exit 0 if usable, 1 listing every error
          --strict: warnings are errors too; --lenient: errors inside a flag are warnings
          (as eval and flagd load files: that flag evaluates to PARSE_ERROR)
eval      evaluate one flag (--flag) or all flags for a context; print the OFREP body
          a flag with errors answers PARSE_ERROR (errorDetails says why); the others work
          --context defaults to {}; --now defaults to the system clock
push      validate FILE, then make it the edge's active flag set (admin API)
pull      print the edge's active flag set
          --url defaults to $EDGEFLAGS_URL or http://127.0.0.1:8787, --token to $EDGEFLAGS_TOKEN
rollout simulate
          run KEY's rollout plan K times (default 1000, --seed 1) through the edge's decide(),
          one decision per simulated minute; N new visitors a minute (default 100), one
          request each, a share P (0..1) of treatment visitors and Q (default 0.001) of
          control visitors seeing an error, treatment requests taking X ms (default 20);
          prints {\"runs\",\"completed\",\"rolledBack\",\"running\",\"advancedPastFirstStage\",
          \"medianMinutesToRollback\",\"medianMinutesToComplete\"}
vapid generate
          print a new Web Push (VAPID) key pair as {\"publicKey\",\"privateKey\"} (base64url)
          for the secrets VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY";

/// A failure that ends the program with exit code 2 (bad arguments or input files).
struct Usage(String);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("validate") => validate(args.get(1..).unwrap_or(&[])),
        Some("eval") => eval(args.get(1..).unwrap_or(&[])),
        Some("push") => remote::push(args.get(1..).unwrap_or(&[])),
        Some("pull") => remote::pull(args.get(1..).unwrap_or(&[])),
        Some("rollout") => match args.get(1).map(String::as_str) {
            Some("simulate") => rollout_simulate(args.get(2..).unwrap_or(&[])),
            Some(other) => Err(Usage(format!("unknown rollout command `{other}`"))),
            None => Err(Usage("missing rollout command (simulate)".into())),
        },
        Some("vapid") => vapid::run(args.get(1..).unwrap_or(&[])),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some("-V" | "--version") => {
            println!("edgeflags {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => Err(Usage(format!("unknown command `{other}`"))),
        None => Err(Usage("missing command".into())),
    };
    match result {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("edgeflags: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Splits `--name value` and `--name=value` options from positional arguments.
struct Args {
    positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

/// Options that take a value; everything else is a switch.
const VALUED: &[&str] = &[
    "--flags",
    "--flag",
    "--context",
    "--now",
    "--url",
    "--token",
    "--prefix",
    "--if-match",
    "--error-rate",
    "--control-error-rate",
    "--visitors-per-minute",
    "--p99-ms",
    "--delivery-success",
    "--runs",
    "--seed",
];

fn parse(args: &[String]) -> Result<Args, Usage> {
    let mut out = Args {
        positional: Vec::new(),
        options: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            out.positional.extend(it.by_ref().cloned());
            break;
        }
        if !arg.starts_with("--") {
            out.positional.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if VALUED.contains(&name.as_str()) {
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| Usage(format!("{name} needs a value")))?,
            };
            out.options.push((name, Some(value)));
        } else if inline.is_some() {
            return Err(Usage(format!("{name} takes no value")));
        } else {
            out.options.push((name, None));
        }
    }
    Ok(out)
}

impl Args {
    /// The value of an option given at most once.
    fn value(&self, name: &str) -> Result<Option<&str>, Usage> {
        let mut found = self.options.iter().filter(|(n, _)| n == name);
        let first = found.next().and_then(|(_, v)| v.as_deref());
        if found.next().is_some() {
            return Err(Usage(format!("{name} given more than once")));
        }
        Ok(first)
    }

    fn switch(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    fn only(&self, allowed: &[&str]) -> Result<(), Usage> {
        match self
            .options
            .iter()
            .find(|(n, _)| !allowed.contains(&n.as_str()))
        {
            Some((n, _)) => Err(Usage(format!("unknown option {n}"))),
            None => Ok(()),
        }
    }
}

fn read(path: &str) -> Result<String, Usage> {
    std::fs::read_to_string(path).map_err(|e| Usage(format!("cannot read {path}: {e}")))
}

fn print_diagnostics(kind: &str, list: &[Diagnostic]) {
    for d in list {
        eprintln!("{kind}: {d}");
    }
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn validate(args: &[String]) -> Result<ExitCode, Usage> {
    let args = parse(args)?;
    args.only(&["--strict", "--lenient"])?;
    let [file] = args.positional.as_slice() else {
        return Err(Usage("validate takes exactly one FILE".into()));
    };
    let opts = LoadOptions {
        strict: args.switch("--strict"),
        lenient: args.switch("--lenient"),
    };
    if opts.strict && opts.lenient {
        return Err(Usage("--strict and --lenient exclude each other".into()));
    }
    let text = read(file)?;
    match FlagSet::from_json_str(&text, opts) {
        Ok(loaded) => {
            // A lenient load keeps flags with errors: their errors are reported as
            // warnings, in document order with the other warnings' flags.
            let flag_errors: Vec<Diagnostic> = loaded
                .set
                .flag_errors()
                .flat_map(|(_, errors)| errors.iter().cloned())
                .collect();
            print_diagnostics("warning", &flag_errors);
            print_diagnostics("warning", &loaded.warnings);
            println!(
                "ok: {}, {}",
                plural(loaded.set.len(), "flag"),
                plural(flag_errors.len() + loaded.warnings.len(), "warning")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            print_diagnostics("error", &err.diagnostics);
            print_diagnostics("warning", &err.warnings);
            println!(
                "invalid: {}, {}",
                plural(err.diagnostics.len(), "error"),
                plural(err.warnings.len(), "warning")
            );
            Ok(ExitCode::from(1))
        }
    }
}

fn eval(args: &[String]) -> Result<ExitCode, Usage> {
    let args = parse(args)?;
    args.only(VALUED)?;
    if !args.positional.is_empty() {
        return Err(Usage(format!(
            "unexpected argument `{}`",
            args.positional.join(" ")
        )));
    }
    let flags_path = args
        .value("--flags")?
        .ok_or_else(|| Usage("eval needs --flags FILE".into()))?;
    let context_text = match args.value("--context")? {
        None => "{}".to_owned(),
        Some(path) if path.starts_with('@') => read(path.get(1..).unwrap_or_default())?,
        Some(json) => json.to_owned(),
    };
    let now = match args.value("--now")? {
        Some(s) => s.parse::<u64>().map_err(|_| {
            Usage(format!(
                "--now must be unix seconds (a non-negative integer), not `{s}`"
            ))
        })?,
        // The CLI may read the clock; the core never does.
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let context_json: serde_json::Value = serde_json::from_str(&context_text)
        .map_err(|e| Usage(format!("--context is not valid JSON: {e}")))?;
    let text = read(flags_path)?;
    // As flagd reads a file: a flag whose definition has errors is kept and answers
    // PARSE_ERROR; only a file that is not JSON or has no usable structure is refused.
    let set = match FlagSet::from_json_str(&text, LoadOptions::lenient()) {
        Ok(loaded) => loaded.set,
        Err(err) => {
            let lines: Vec<String> = err.diagnostics.iter().map(ToString::to_string).collect();
            return Err(Usage(format!(
                "unusable flag file {flags_path}:\n  {}",
                lines.join("\n  ")
            )));
        }
    };
    let flag = args.value("--flag")?;
    // A context that is JSON but not an object is an evaluation error (INVALID_CONTEXT),
    // reported in the body like any other.
    let body = match (Context::from_value(context_json), flag) {
        (Ok(ctx), Some(key)) => serde_json::to_string(&set.evaluate(key, &ctx, now)),
        (Ok(ctx), None) => serde_json::to_string(&set.evaluate_all(&ctx, now)),
        (Err(e), Some(key)) => serde_json::to_string(&serde_json::json!({
            "key": key, "errorCode": e.code.as_str(), "errorDetails": e.details
        })),
        (Err(e), None) => serde_json::to_string(&e),
    };
    match body {
        Ok(line) => {
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(Usage(format!("cannot serialize the result: {e}"))),
    }
}

/// `edgeflags rollout simulate`.
fn rollout_simulate(args: &[String]) -> Result<ExitCode, Usage> {
    let args = parse(args)?;
    args.only(&[
        "--flags",
        "--flag",
        "--error-rate",
        "--control-error-rate",
        "--visitors-per-minute",
        "--p99-ms",
        "--delivery-success",
        "--runs",
        "--seed",
    ])?;
    if let Some(extra) = args.positional.first() {
        return Err(Usage(format!("unexpected argument {extra}")));
    }
    let required = |name: &str| {
        args.value(name)?
            .ok_or_else(|| Usage(format!("{name} is required")))
    };
    let file = required("--flags")?;
    let flag = required("--flag")?;
    let rate = |name: &str, text: &str| -> Result<f64, Usage> {
        text.parse::<f64>()
            .ok()
            .filter(|x| (0.0..=1.0).contains(x))
            .ok_or_else(|| {
                Usage(format!(
                    "{name} must be a rate between 0 and 1, not {text:?}"
                ))
            })
    };
    let count = |name: &str, text: &str, max: u64| -> Result<u64, Usage> {
        text.parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| Usage(format!("{name} must be an integer 1..={max}, not {text:?}")))
    };
    let mut p = simulate::Params {
        error_rate: rate("--error-rate", required("--error-rate")?)?,
        ..simulate::Params::default()
    };
    if let Some(q) = args.value("--control-error-rate")? {
        p.control_error_rate = rate("--control-error-rate", q)?;
    }
    if let Some(n) = args.value("--visitors-per-minute")? {
        p.visitors_per_minute = count("--visitors-per-minute", n, 1_000_000)?;
    }
    if let Some(x) = args.value("--p99-ms")? {
        p.p99_ms = x
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| Usage(format!("--p99-ms must be milliseconds ≥ 0, not {x:?}")))?;
    }
    if let Some(q) = args.value("--delivery-success")? {
        p.delivery_success = rate("--delivery-success", q)?;
    }
    if let Some(k) = args.value("--runs")? {
        p.runs = count("--runs", k, 1_000_000)?;
    }
    if let Some(s) = args.value("--seed")? {
        p.seed = s
            .parse::<u64>()
            .map_err(|_| Usage(format!("--seed must be an integer ≥ 0, not {s:?}")))?;
    }
    let document = read(file)?;
    let summary = simulate::simulate(&document, flag, &p).map_err(Usage)?;
    println!("{}", summary.to_json());
    Ok(ExitCode::SUCCESS)
}
