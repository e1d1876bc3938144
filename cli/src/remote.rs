//! `edgeflags push` / `pull`: move flag sets to and from a running edge through its admin API
//! (`PUT`/`GET {prefix}/flags` with a bearer token). A local `wrangler dev` edge works the
//! same way (`--url http://127.0.0.1:8787`, the token from `.dev.vars`).

use std::process::ExitCode;

use edgeflags_core::{FlagSet, LoadOptions};

use crate::{print_diagnostics, read, Args, Usage};

/// Where the edge is and how to authenticate.
struct Remote {
    url: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    fn from_args(args: &Args) -> Result<Self, Usage> {
        let base = args
            .value("--url")?
            .map(str::to_owned)
            .or_else(|| std::env::var("EDGEFLAGS_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8787".into());
        let prefix = args.value("--prefix")?.unwrap_or("/__edge");
        let token = args
            .value("--token")?
            .map(str::to_owned)
            .or_else(|| std::env::var("EDGEFLAGS_TOKEN").ok())
            .ok_or_else(|| Usage("an admin token is needed: --token or EDGEFLAGS_TOKEN".into()))?;
        // Non-2xx answers carry the reasons we want to show, so they are not transport errors.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self {
            url: format!("{}{prefix}/flags", base.trim_end_matches('/')),
            token,
            agent,
        })
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// Reads the response status and JSON body (or a transport error, as a message).
fn answer(
    res: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, serde_json::Value), String> {
    let mut res = res.map_err(|e| format!("cannot reach the edge: {e}"))?;
    let status = res.status().as_u16();
    let text = res
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("unreadable answer: {e}"))?;
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, body))
}

fn fail(message: String) -> Result<ExitCode, Usage> {
    eprintln!("edgeflags: {message}");
    Ok(ExitCode::FAILURE)
}

/// `edgeflags push FILE [--url URL] [--token T] [--prefix P] [--if-match VERSION]`
pub fn push(args: &[String]) -> Result<ExitCode, Usage> {
    let args = crate::parse(args)?;
    args.only(&["--url", "--token", "--prefix", "--if-match"])?;
    let [file] = args.positional.as_slice() else {
        return Err(Usage("push takes exactly one FILE".into()));
    };
    let text = read(file)?;
    // Refuse locally first: the same validation the edge runs, with every path listed.
    if let Err(e) = FlagSet::from_json_str(&text, LoadOptions::default()) {
        print_diagnostics("error", &e.diagnostics);
        return fail(format!("{file} is invalid; nothing was pushed"));
    }
    let remote = Remote::from_args(&args)?;
    let mut req = remote
        .agent
        .put(&remote.url)
        .header("authorization", &remote.auth())
        .header("content-type", "application/json");
    if let Some(v) = args.value("--if-match")? {
        req = req.header("if-match", &format!("\"{}\"", v.trim_matches('"')));
    }
    match answer(req.send(text.as_bytes())) {
        Ok((200, body)) => {
            println!(
                "pushed: version {}",
                body["version"].as_str().unwrap_or("?")
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok((status, body)) => {
            if let Some(errors) = body["errors"].as_array() {
                for e in errors {
                    eprintln!(
                        "error: {}: {}",
                        e["path"].as_str().unwrap_or("?"),
                        e["message"].as_str().unwrap_or("?")
                    );
                }
            }
            fail(format!(
                "the edge refused the push ({status}): {}",
                body["errorDetails"].as_str().unwrap_or(&body.to_string())
            ))
        }
        Err(e) => fail(e),
    }
}

/// `edgeflags pull [--url URL] [--token T] [--prefix P]` — prints the active flag set.
pub fn pull(args: &[String]) -> Result<ExitCode, Usage> {
    let args = crate::parse(args)?;
    args.only(&["--url", "--token", "--prefix"])?;
    if !args.positional.is_empty() {
        return Err(Usage("pull takes no positional arguments".into()));
    }
    let remote = Remote::from_args(&args)?;
    match answer(
        remote
            .agent
            .get(&remote.url)
            .header("authorization", &remote.auth())
            .call(),
    ) {
        Ok((200, body)) => {
            eprintln!("version {}", body["version"].as_str().unwrap_or("?"));
            let pretty =
                serde_json::to_string_pretty(&body["flagSet"]).map_err(|e| Usage(e.to_string()))?;
            println!("{pretty}");
            Ok(ExitCode::SUCCESS)
        }
        Ok((status, body)) => fail(format!(
            "the edge answered {status}: {}",
            body["errorDetails"].as_str().unwrap_or(&body.to_string())
        )),
        Err(e) => fail(e),
    }
}
