//! Demo origin: the "ERP backend" that edgeflags sits in front of.
//!
//! One process serves two versions of the same JSON API — `v1` (stable) and `v2` (canary) —
//! on two loopback listeners, plus the demo PWA's static files. The version shows in the
//! `X-App-Version` header and in every JSON body, so tests and humans can see which origin
//! the edge picked. Orders are shared between both versions (one database, two deployments).
//!
//! Usage: `edgeflags-demo-origin [--v1 ADDR] [--v2 ADDR] [--static DIR]`. Port 0 picks a free
//! port; the bound addresses are printed as one JSON line on stdout so a harness can read them.

mod api;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::net::TcpListener;

struct Args {
    v1: SocketAddr,
    v2: SocketAddr,
    static_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        v1: SocketAddr::from(([127, 0, 0, 1], 8788)),
        v2: SocketAddr::from(([127, 0, 0, 1], 8789)),
        static_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--v1" => args.v1 = value()?.parse().map_err(|e| format!("--v1: {e}"))?,
            "--v2" => args.v2 = value()?.parse().map_err(|e| format!("--v2: {e}"))?,
            "--static" => args.static_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                return Err(
                    "usage: edgeflags-demo-origin [--v1 ADDR] [--v2 ADDR] [--static DIR]".into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo origin: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let state = api::State::default();
    let l1 = TcpListener::bind(args.v1).await?;
    let l2 = TcpListener::bind(args.v2).await?;
    let (a1, a2) = (l1.local_addr()?, l2.local_addr()?);
    let app1 = api::router(api::Version::V1, state.clone(), args.static_dir.as_deref());
    let app2 = api::router(api::Version::V2, state, args.static_dir.as_deref());
    // One JSON line the harness parses; keep the shape stable.
    println!(r#"{{"event":"listening","v1":"{a1}","v2":"{a2}"}}"#);
    let s1 = axum::serve(l1, app1).with_graceful_shutdown(shutdown());
    let s2 = axum::serve(l2, app2).with_graceful_shutdown(shutdown());
    let (r1, r2) = tokio::join!(s1, s2);
    r1.and(r2)
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
