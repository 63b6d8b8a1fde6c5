use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgeseo::app::{App, ServeOptions};
use edgeseo::config::Rules;

/// Edge proxy that serves a supplier's website localized for Indonesia, Vietnam and Thailand.
#[derive(Parser)]
#[command(name = "edgeseo", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the embedded sample supplier site behind the proxy, with the rules in rules/.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "rules")]
        rules: PathBuf,
        /// Where the embedded sample site itself listens (loopback, any free port by default).
        #[arg(long, default_value = "127.0.0.1:0")]
        origin_listen: SocketAddr,
        /// Admin listener (health, metrics, purge, reload); needs EDGESEO_ADMIN_TOKEN or [admin] token.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
    /// Serve the sites described by a rules directory.
    Serve {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
        /// Also serve HTTPS here, with certificates from --certs.
        #[arg(long)]
        tls_listen: Option<SocketAddr>,
        #[arg(long, default_value = "certs")]
        certs: PathBuf,
        /// Admin listener (health, metrics, purge, reload); needs EDGESEO_ADMIN_TOKEN or [admin] token.
        #[arg(long)]
        admin: Option<SocketAddr>,
    },
    /// Validate a rules directory; prints every problem as path:line:col: message.
    Check {
        #[arg(long)]
        rules: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,edgeseo::access=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { rules } => return check(&rules),
        Command::Demo {
            listen,
            rules,
            origin_listen,
            admin,
        } => run(
            ServeOptions {
                rules_dir: rules,
                listen,
                tls_listen: None,
                certs_dir: PathBuf::from("certs"),
                embedded_listen: origin_listen,
                admin_listen: admin,
            },
            true,
        ),
        Command::Serve {
            rules,
            listen,
            tls_listen,
            certs,
            admin,
        } => run(
            ServeOptions {
                rules_dir: rules,
                listen,
                tls_listen,
                certs_dir: certs,
                embedded_listen: "127.0.0.1:0".parse().expect("valid address"),
                admin_listen: admin,
            },
            false,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeseo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(dir: &std::path::Path) -> ExitCode {
    match Rules::load(dir) {
        Ok(rules) => {
            println!(
                "{}: {} site(s), all rules valid",
                dir.display(),
                rules.sites.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            for d in &e.diagnostics {
                println!("{d}");
            }
            eprintln!("{} problem(s) found", e.diagnostics.len());
            ExitCode::FAILURE
        }
    }
}

fn run(opts: ServeOptions, demo: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Handlers first: a SIGTERM right after the URLs are printed must drain, not kill.
        let signals = Signals::install()?;
        let app = App::start(opts).await?;
        if demo {
            print_demo_urls(&app);
        } else {
            tracing::info!(http = %app.http_addr, https = ?app.https_addr, admin = ?app.admin_addr, "edgeseo serving");
        }
        signals.wait(&app).await;
        tracing::info!("shutting down: draining in-flight requests");
        app.shutdown().await;
        Ok(())
    })
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns on SIGINT or SIGTERM; reloads the rules on SIGHUP.
    async fn wait(mut self, app: &App) {
        loop {
            tokio::select! {
                _ = self.int.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => match app.reload() {
                    Ok(()) => tracing::info!("rules reloaded"),
                    Err(e) => tracing::error!("reload refused, previous rules keep serving: {e}"),
                },
            }
        }
    }
}

fn print_demo_urls(app: &App) {
    use std::io::Write;
    let base = format!("http://{}", app.http_addr);
    let localhost = format!("http://localhost:{}", app.http_addr.port());
    let mut text = String::from("edgeseo demo: the LIANHE sample supplier site behind the proxy\n");
    if let Some(origin) = app.embedded.demo {
        text.push_str(&format!("  origin (direct, unproxied): http://{origin}/\n"));
    }
    if let Some(admin) = app.admin_addr {
        text.push_str(&format!("  admin           http://{admin}/healthz\n"));
    }
    text.push_str(&format!(
        "  home            {base}/   (also {localhost}/)\n"
    ));
    text.push_str(&format!("  catalogue       {base}/products\n"));
    text.push_str(&format!(
        "  product page    {base}/products/air-fryer-4-5l\n"
    ));
    text.push_str(&format!(
        "  Indonesian      {base}/id/products/air-fryer-4-5l\n"
    ));
    text.push_str(&format!(
        "  Vietnamese      {base}/vi/products/air-fryer-4-5l\n"
    ));
    text.push_str(&format!(
        "  Thai            {base}/th/products/air-fryer-4-5l\n"
    ));
    text.push_str(&format!("  sitemap         {base}/sitemap.xml\n"));
    text.push_str(&format!(
        "  chat            the button on every page, or: curl -s -H 'content-type: application/json' -d '{{\"message\":\"brp harga air fryer min?\"}}' {base}/api/chat\n"
    ));
    text.push_str("Press Ctrl-C to stop.\n");
    // A closed stdout (the demo started from a script that stopped reading) is not an error.
    let _ = std::io::stdout().write_all(text.as_bytes());
    let _ = std::io::stdout().flush();
}
