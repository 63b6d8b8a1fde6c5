use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgeseo::app::{App, ServeOptions};
use edgeseo::config::Rules;
use edgeseo::locale::Locale;

// A request allocates and frees many small buffers (tokens, segments, headers) across worker
// threads; mimalloc's thread-local free lists cost less than glibc's arenas there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Edge proxy that serves a supplier's website localized for Indonesia, Vietnam and Thailand.
#[derive(Parser)]
#[command(name = "edgeseo", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or RUST_LOG-style directives (`warn`, `info,edgeseo::proxy=debug`); RUST_LOG
    /// applies when this is not given, `info` when neither is.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Write an access line per request (target `edgeseo::access`) once its response is sent.
    #[arg(long, global = true)]
    access_log: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
        /// Visitors' listener; every interface by default, as a site's front door is.
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
    /// Measure the chat's language identification and intent recognition.
    #[command(subcommand)]
    Chat(ChatCommand),
    /// Prepare the translation of a site's page text (PO files under translations/).
    #[command(subcommand)]
    Translate(TranslateCommand),
    /// The certification's chat stress test: an open-loop constant-rate load of labelled
    /// messages against a chat endpoint; figures and verdict in --out/report.json.
    Stress {
        /// The chat endpoint, e.g. http://127.0.0.1:8080/api/chat.
        #[arg(long)]
        target: String,
        /// Requests per second, each sent on its schedule whatever the latency.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// A request unanswered after this counts as timed out.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Labelled messages (CSV: text,intent,lang); the built-in blind set by default.
        #[arg(long)]
        set: Option<PathBuf>,
        /// Directory for report.json and SHA256SUMS (added to a report already there).
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// The localized SEO scan of a site (any site; with --rules and --site, its keyword database
    /// too): head, hreflang, language of the text, structured data, speed, per page and locale.
    Audit {
        /// The site as buyers reach it, e.g. https://www.example.com.
        #[arg(long)]
        base: String,
        #[arg(long, requires = "site")]
        rules: Option<PathBuf>,
        #[arg(long, requires = "rules")]
        site: Option<String>,
        #[arg(long, default_value_t = 200)]
        max_pages: usize,
        /// Requests per second at most.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Fetch through this HTTP proxy (http://host:port, CONNECT tunnels), e.g. one in the
        /// buyer's country, so speed is measured from there.
        #[arg(long)]
        via: Option<String>,
        /// Directory for report.json and SHA256SUMS (added to a report already there).
        #[arg(long, default_value = "report")]
        out: PathBuf,
    },
    /// Check a report directory against its SHA256SUMS and the report's inputs.
    VerifyReport { dir: PathBuf },
}

#[derive(Subcommand)]
enum TranslateCommand {
    /// Crawl the site's origin and merge its page text into translations/<locale>.po:
    /// translations kept, new text added untranslated, vanished text kept as obsolete.
    Extract {
        #[arg(long)]
        rules: PathBuf,
        /// The site (directory name under the rules directory).
        #[arg(long)]
        site: String,
        /// Most HTML pages fetched.
        #[arg(long, default_value_t = 200)]
        max_pages: usize,
    },
    /// Pre-fill the untranslated entries of translations/<locale>.po from a machine-translation
    /// service, marked fuzzy (not served until a reviewer clears the flag, or serve_fuzzy).
    Fill {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        site: String,
        /// id, vi or th.
        #[arg(long)]
        locale: String,
        /// LibreTranslate's `…/translate` or an OpenAI-compatible `…/v1/chat/completions` URL.
        #[arg(long)]
        backend: String,
        /// libretranslate or openai; by default named by the backend URL's path.
        #[arg(long)]
        api: Option<String>,
        /// Model asked of an OpenAI-compatible backend.
        #[arg(long, default_value = "gpt-4o-mini")]
        model: String,
        /// Environment variable holding the backend's API key.
        #[arg(long)]
        api_key_env: Option<String>,
        /// Most entries sent.
        #[arg(long, default_value_t = usize::MAX)]
        limit: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
enum ChatCommand {
    /// Accuracy of a site's chat on labelled messages (CSV: text,intent,lang), as the endpoint
    /// answers them: per language and intent, confusions, refusals, out of scope, language ID.
    Eval {
        #[arg(long)]
        rules: PathBuf,
        /// The site (directory name under the rules directory).
        #[arg(long)]
        site: String,
        /// Labelled messages; give several to pool them.
        #[arg(long, required = true)]
        set: Vec<PathBuf>,
        /// Page locale assumed for messages too short to tell their language: `own` (the
        /// message's labelled language, as a buyer on that locale's pages) or en/id/vi/th.
        #[arg(long, default_value = "own")]
        page_locale: String,
        /// Also list every message whose intent or language was not recognised.
        #[arg(long)]
        errors: bool,
    },
    /// Share of a site's chat answers that state the facts a question set expects (CSV:
    /// question,lang,market,must_contain), per language; regulatory and product questions.
    Knowledge {
        #[arg(long)]
        rules: PathBuf,
        #[arg(long)]
        site: String,
        /// Question sets; give several to pool them.
        #[arg(long, required = true)]
        set: Vec<PathBuf>,
        /// Also list every question whose answer lacks a fact, with what it lacks.
        #[arg(long)]
        errors: bool,
    },
    /// Leave-one-industry-out cross-validation of the base corpus shipped with edgeseo: for each
    /// industry, a model trained without it is tested on its messages.
    CrossIndustry {
        /// Confidence below which the answer is `unknown`.
        #[arg(long, default_value_t = edgeseo::chat::intent::RECOMMENDED_THRESHOLD)]
        threshold: f32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormat::Text => edgeseo::logging::Format::Text,
        LogFormat::Json => edgeseo::logging::Format::Json,
    };
    if let Err(e) = edgeseo::logging::init(format, cli.log_level.as_deref(), cli.access_log) {
        eprintln!("edgeseo: --log-level: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Check { rules } => return check(&rules),
        Command::Chat(command) => chat_command(command),
        Command::Translate(command) => translate_command(command),
        Command::Stress {
            target,
            rate,
            duration,
            timeout,
            set,
            out,
        } => match stress(target, rate, duration, timeout, set, &out) {
            Ok(true) => return ExitCode::SUCCESS,
            // The run worked; the site does not meet the certification.
            Ok(false) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
        Command::VerifyReport { dir } => return verify_report(&dir),
        Command::Audit {
            base,
            rules,
            site,
            max_pages,
            rate,
            via,
            out,
        } => match audit(base, rules.zip(site), max_pages, rate, via, &out) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
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
            for site in &rules.sites {
                let Some(seo) = &site.seo else { continue };
                for warning in edgeseo::seo::unfit_templates(seo) {
                    println!("{warning}");
                }
                for &locale in seo.locales.iter().filter(|&&l| l != Locale::En) {
                    let c = seo.coverage(locale);
                    println!(
                        "{}/{}: page text {:.1} % translated ({}/{} words), {}/{} pages at min_coverage {}",
                        site.name,
                        locale.code(),
                        100.0 * c.share(),
                        c.translated_words,
                        c.words,
                        c.pages_covered,
                        c.pages,
                        seo.translate.min_coverage
                    );
                }
            }
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

/// Runs the stress test and writes its report; whether every criterion passed.
fn stress(
    target: String,
    rate: f64,
    duration: std::time::Duration,
    timeout: std::time::Duration,
    set: Option<PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<bool> {
    use edgeseo::config::{SourceFile, parse_examples};
    use edgeseo::report::{FileHash, StressSection};
    use edgeseo::stress::{self, StressPlan};
    let (messages, inputs) = match &set {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let hash = FileHash::of("message set", &path.display().to_string(), text.as_bytes());
            let mut diags = Vec::new();
            let messages = parse_examples(&SourceFile::new(path, text), &mut diags);
            if let Some(d) = diags.first() {
                anyhow::bail!("{d}");
            }
            (messages, vec![hash])
        }
        None => {
            let (messages, files) = stress::builtin_messages();
            let hashes = files
                .iter()
                .map(|(name, text)| {
                    FileHash::of("message set", &format!("builtin:{name}"), text.as_bytes())
                })
                .collect();
            (messages, hashes)
        }
    };
    let plan = StressPlan {
        target,
        rate,
        duration,
        timeout,
        messages,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = indicatif::ProgressBar::new(duration.as_secs()).with_style(
        indicatif::ProgressStyle::with_template("{pos:>3}/{len} s {wide_msg}")
            .expect("static template"),
    );
    let result = runtime.block_on(stress::run(&plan, |live| {
        bar.set_position(live.elapsed.as_secs());
        bar.set_message(format!(
            "{} sent, {} answered, {} failed, mean {:.1} ms",
            live.sent, live.ok, live.failed, live.mean_ms
        ));
    }))?;
    bar.finish_and_clear();

    let section = StressSection::judge(result);
    // Saved before anything is printed: a closed stdout (`| head`) must not lose the run.
    let report = save_report(out, "message set", inputs, |report| {
        report.stress = Some(section)
    })?;
    let section = report.stress.as_ref().expect("just added");
    let r = &section.result;
    println!(
        "{} requests at {} req/s for {:.0} s: {}",
        r.sent,
        r.planned_rate,
        r.duration_s,
        r.outcome()
    );
    let l = &r.latency_ms;
    println!(
        "latency from the scheduled send: mean {:.1} ms, p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
        l.mean, l.p50, l.p95, l.p99, l.max
    );
    if r.generator_lag.late > 0 {
        println!(
            "the generator fell behind: {} requests sent over 10 ms late (at most {:.1} ms); the rate and latency above include that",
            r.generator_lag.late, r.generator_lag.max_ms
        );
    }
    for a in &r.accuracy {
        println!(
            "{:>4}: intent {:5.1} %, language {:5.1} % ({} answered)",
            a.lang,
            100.0 * a.intent(),
            100.0 * a.language(),
            a.answered
        );
    }
    print_criteria(&section.criteria);
    println!(
        "report: {}",
        out.join(edgeseo::report::REPORT_FILE).display()
    );
    Ok(section.passed)
}

/// Runs the SEO audit and writes its report; whether every criterion passed.
fn audit(
    base: String,
    rules_site: Option<(PathBuf, String)>,
    max_pages: usize,
    rate: f64,
    via: Option<String>,
    out: &std::path::Path,
) -> anyhow::Result<bool> {
    use edgeseo::audit::{self, AuditPlan};
    use edgeseo::report::FileHash;
    let loaded = match &rules_site {
        Some((dir, _)) => Some(load_rules(dir)?),
        None => None,
    };
    let mut inputs = Vec::new();
    let seo = match (&loaded, &rules_site) {
        (Some(rules), Some((dir, name))) => {
            let (site, seo) = localized_site(rules, dir, name)?;
            let site_dir = dir.join(&site.name);
            let mut files = vec![
                site_dir.join("site.toml"),
                site_dir.join("pages.toml"),
                site_dir.join("products.csv"),
            ];
            files.extend(
                seo.locales
                    .iter()
                    .map(|l| site_dir.join("keywords").join(format!("{}.csv", l.code()))),
            );
            for file in files {
                if let Ok(bytes) = std::fs::read(&file) {
                    inputs.push(FileHash::of("rules", &file.display().to_string(), &bytes));
                }
            }
            Some(seo)
        }
        _ => None,
    };
    let plan = AuditPlan {
        base,
        max_pages,
        rate,
        seo,
        via,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = indicatif::ProgressBar::new(max_pages as u64).with_style(
        indicatif::ProgressStyle::with_template("{pos:>4}/{len} pages {wide_msg}")
            .expect("static template"),
    );
    let result = runtime.block_on(audit::run(&plan, |n, path| {
        bar.set_position(n as u64);
        bar.set_message(path.to_owned());
    }))?;
    bar.finish_and_clear();
    // Saved before anything is printed: a closed stdout (`| head`) must not lose the run.
    let report = save_report(out, "rules", inputs, |report| report.audit = Some(result))?;
    let result = report.audit.as_ref().expect("just added");
    println!("{} pages of {}", result.pages.len(), result.base);
    for k in &result.keywords {
        println!(
            "keywords {}: {:.1} % of the search volume ({} of {}); most searched missing: {}",
            k.locale,
            100.0 * k.share,
            k.found,
            k.keywords,
            k.missing.join(", ")
        );
    }
    let with_problems: Vec<_> = result
        .pages
        .iter()
        .filter(|p| !p.problems.is_empty())
        .collect();
    for page in with_problems.iter().take(40) {
        println!("  {}: {}", page.path, page.problems.join("; "));
    }
    if with_problems.len() > 40 {
        println!(
            "  … {} more pages with problems in the report",
            with_problems.len() - 40
        );
    }
    print_criteria(&result.criteria);
    println!(
        "report: {}",
        out.join(edgeseo::report::REPORT_FILE).display()
    );
    Ok(result.passed)
}

fn print_criteria(criteria: &[edgeseo::report::Criterion]) {
    for c in criteria {
        let mark = if c.passed { "pass" } else { "FAIL" };
        println!(
            "{mark}  {}: {} (required {})",
            c.name, c.measured, c.required
        );
    }
}

/// Adds a run's section and inputs (of `role`) to the report in `out`, writes it, and returns it.
fn save_report(
    out: &std::path::Path,
    role: &str,
    inputs: Vec<edgeseo::report::FileHash>,
    add: impl FnOnce(&mut edgeseo::report::Report),
) -> anyhow::Result<edgeseo::report::Report> {
    use edgeseo::report::{self, Report};
    let mut report = Report::open(out)?;
    add(&mut report);
    report.set_inputs(role, inputs);
    report::write(out, &report)?;
    Ok(report)
}

fn verify_report(dir: &std::path::Path) -> ExitCode {
    match edgeseo::report::verify(dir) {
        Ok(v) => {
            for name in &v.intact {
                println!("ok        {name}");
            }
            for (what, names) in [
                ("CHANGED  ", &v.changed),
                ("MISSING  ", &v.missing),
                ("UNLISTED ", &v.unlisted),
            ] {
                for name in names {
                    println!("{what} {name}");
                }
            }
            for input in &v.inputs_changed {
                println!("note      input {input} differs from the one the report was made from");
            }
            if v.passed() {
                println!("{}: report intact", dir.display());
                ExitCode::SUCCESS
            } else {
                println!("{}: report altered", dir.display());
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn load_rules(dir: &std::path::Path) -> anyhow::Result<Rules> {
    Rules::load(dir).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The site named `name` (its directory under the rules directory `dir`).
fn find_site<'r>(
    rules: &'r Rules,
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<&'r edgeseo::config::Site> {
    rules
        .sites
        .iter()
        .find(|s| s.name == name)
        .with_context(|| format!("no site `{name}` in {}", dir.display()))
}

/// The site named `name` and its SEO rules, which translating needs.
fn localized_site<'r>(
    rules: &'r Rules,
    dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<(&'r edgeseo::config::Site, &'r edgeseo::config::SiteSeo)> {
    let site = find_site(rules, dir, name)?;
    let seo = site.seo.as_deref().with_context(|| {
        format!(
            "site `{}` has no pages.toml: nothing is localized",
            site.name
        )
    })?;
    Ok((site, seo))
}

fn translate_command(command: TranslateCommand) -> anyhow::Result<()> {
    match command {
        TranslateCommand::Extract {
            rules,
            site,
            max_pages,
        } => translate_extract(&rules, &site, max_pages),
        TranslateCommand::Fill {
            rules,
            site,
            locale,
            backend,
            api,
            model,
            api_key_env,
            limit,
            concurrency,
        } => {
            use edgeseo::translate::fill::{self, Api, Backend, Brief};
            let loaded = load_rules(&rules)?;
            let (site, seo) = localized_site(&loaded, &rules, &site)?;
            let locale = Locale::from_code(&locale)
                .filter(|l| *l != Locale::En)
                .with_context(|| format!("--locale {locale:?}: expected id, vi or th"))?;
            let api = match api.as_deref() {
                None => None,
                Some("libretranslate") => Some(Api::LibreTranslate),
                Some("openai") => Some(Api::OpenAi { model }),
                Some(other) => anyhow::bail!("--api {other:?}: expected libretranslate or openai"),
            };
            let api_key = match api_key_env {
                Some(var) => Some(
                    std::env::var(&var)
                        .with_context(|| format!("--api-key-env: ${var} is not set"))?,
                ),
                None => None,
            };
            let keywords = seo.keywords.overall(locale, 20);
            let keywords: Vec<&str> = keywords.iter().map(|k| k.text.as_str()).collect();
            let brief = std::sync::Arc::new(Brief::new(locale, &seo.translate.glossary, &keywords));
            let path = rules
                .join(&site.name)
                .join("translations")
                .join(format!("{}.po", locale.code()));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(async {
                let backend = std::sync::Arc::new(Backend::new(&backend, api, api_key)?);
                let bar = indicatif::ProgressBar::no_length().with_style(
                    indicatif::ProgressStyle::with_template("{pos} entries translated")
                        .expect("static template"),
                );
                let report = fill::fill(&path, locale, backend, brief, limit, concurrency, |n| {
                    bar.set_position(n as u64)
                })
                .await;
                bar.finish_and_clear();
                report
            })?;
            println!(
                "{}: {} entries without a translation sent, {} filled (marked fuzzy), {} left",
                path.display(),
                report.asked,
                report.filled,
                report.failed.len()
            );
            for (source, why) in report.failed.iter().take(20) {
                println!("  not filled ({why}): {source}");
            }
            Ok(())
        }
    }
}

fn translate_extract(rules: &std::path::Path, site: &str, max_pages: usize) -> anyhow::Result<()> {
    use edgeseo::translate::extract;
    let loaded = load_rules(rules)?;
    let (site, seo) = localized_site(&loaded, rules, site)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pages = runtime.block_on(async {
        let (embedded, _running) = edgeseo::app::start_embedded_origin(site).await?;
        let upstream = edgeseo::upstream::Upstream::new(&site.origin, &embedded)?;
        let bar = indicatif::ProgressBar::new(max_pages as u64).with_style(
            indicatif::ProgressStyle::with_template("{pos:>4}/{len} pages {wide_msg}")
                .expect("static template"),
        );
        let untranslated = seo.untranslated_selectors();
        let pages = extract::crawl(&upstream, max_pages, &untranslated, |n, path| {
            bar.set_position(n as u64);
            bar.set_message(path.to_owned());
        })
        .await;
        bar.finish_and_clear();
        anyhow::Ok(pages?)
    })?;
    println!(
        "{} pages, {} segments",
        pages.len(),
        pages
            .iter()
            .flat_map(|p| &p.sources)
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    let locales: Vec<Locale> = seo
        .locales
        .iter()
        .copied()
        .filter(|l| *l != Locale::En)
        .collect();
    let mut per_page: Vec<Vec<(usize, usize)>> = vec![Vec::new(); pages.len()];
    for &locale in &locales {
        let path = rules
            .join(&site.name)
            .join("translations")
            .join(format!("{}.po", locale.code()));
        let report = extract::merge(&path, locale, &pages)?;
        println!(
            "{}: {} entries, {} translated, {} new, {} obsolete",
            path.display(),
            report.entries,
            report.translated,
            report.added,
            report.obsolete
        );
        for (row, (_, done, all)) in per_page.iter_mut().zip(report.pages) {
            row.push((done, all));
        }
    }
    let header: Vec<String> = locales
        .iter()
        .map(|l| format!("{:>14}", l.code()))
        .collect();
    println!(
        "\nwords translated / in all, per page\n{:<40}{}",
        "page",
        header.join("")
    );
    for (page, row) in pages.iter().zip(&per_page) {
        let cells: Vec<String> = row
            .iter()
            .map(|(done, all)| format!("{:>14}", format!("{done}/{all}")))
            .collect();
        println!("{:<40}{}", page.path, cells.join(""));
    }
    let min = seo.translate.min_coverage;
    for (i, locale) in locales.iter().enumerate() {
        let (done, all) = per_page
            .iter()
            .fold((0, 0), |(d, a), row| (d + row[i].0, a + row[i].1));
        let covered = per_page
            .iter()
            .filter(|row| row[i].0 as f32 >= min * row[i].1 as f32)
            .count();
        println!(
            "{}: {:.1} % of the words translated, {covered}/{} pages at min_coverage {min} (the others are not advertised at /{}/)",
            locale.code(),
            100.0 * done as f64 / all.max(1) as f64,
            pages.len(),
            locale.code()
        );
    }
    Ok(())
}

/// The site named `name` in `loaded` rules and its chat service.
fn site_chat<'a>(
    loaded: &'a Rules,
    rules: &std::path::Path,
    name: &str,
) -> anyhow::Result<(&'a edgeseo::config::Site, edgeseo::chat::ChatService)> {
    let site = find_site(loaded, rules, name)?;
    let service = edgeseo::chat::ChatService::for_site(site, None)?
        .with_context(|| format!("site `{}` has no [chat]", site.name))?;
    Ok((site, service))
}

/// `paths` as one line, for a report's heading.
fn paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// "<what>: <total> of <out_of> (<key> <n>, ...)", or "(none)".
fn print_counts(what: &str, counts: &std::collections::BTreeMap<String, usize>, out_of: usize) {
    let total: usize = counts.values().sum();
    let each: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let each = if each.is_empty() {
        "none".to_string()
    } else {
        each.join(", ")
    };
    println!("{what}: {total} of {out_of} ({each})");
}

fn chat_command(command: ChatCommand) -> anyhow::Result<()> {
    use edgeseo::chat::eval;
    use edgeseo::config::{SourceFile, base_chat, parse_examples};
    match command {
        ChatCommand::Eval {
            rules,
            site,
            set,
            page_locale,
            errors,
        } => {
            let fixed = match page_locale.as_str() {
                "own" => None,
                code => Some(Locale::from_code(code).with_context(|| {
                    format!("--page-locale: `{code}` is not own, en, id, vi or th")
                })?),
            };
            let loaded = load_rules(&rules)?;
            let (site, service) = site_chat(&loaded, &rules, &site)?;
            let mut messages = Vec::new();
            for path in &set {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut diags = Vec::new();
                messages.extend(parse_examples(&SourceFile::new(path, text), &mut diags));
                if let Some(d) = diags.first() {
                    anyhow::bail!("{d}");
                }
            }
            let mut report = eval::Report::new(true);
            let mut named: std::collections::BTreeMap<String, usize> = Default::default();
            let mut regulatory: std::collections::BTreeMap<String, usize> = Default::default();
            for m in &messages {
                let answer = service.answer(&m.text, fixed.unwrap_or(m.lang));
                if !answer.sources.is_empty() {
                    *regulatory.entry(m.intent.clone()).or_default() += 1;
                }
                if let Some(sku) = &answer.product {
                    *named.entry(sku.clone()).or_default() += 1;
                    if errors {
                        println!("product {sku}  {}  {}", answer.intent, m.text);
                    }
                }
                let detected = Locale::from_code(answer.language).unwrap_or(Locale::En);
                if errors && (detected != m.lang || answer.intent != m.intent) {
                    println!(
                        "{}→{}  {}→{} ({:.2})  {}",
                        m.lang.code(),
                        detected.code(),
                        m.intent,
                        answer.intent,
                        answer.confidence,
                        m.text
                    );
                }
                report.add(m, detected, &answer.intent);
            }
            println!(
                "site {}: {} messages from {}\n",
                site.name,
                messages.len(),
                paths(&set)
            );
            print!("{report}");
            // Answers led by a product's facts: on a set about other trades, each is a false hit.
            println!();
            print_counts(
                "answers led by a named product's facts",
                &named,
                messages.len(),
            );
            // Answers from the regulatory knowledge base, by the message's labelled intent:
            // outside `certification`, mostly questions that did not need one.
            print_counts(
                "answers from the regulatory knowledge base",
                &regulatory,
                messages.len(),
            );
        }
        ChatCommand::Knowledge {
            rules,
            site,
            set,
            errors,
        } => {
            let loaded = load_rules(&rules)?;
            let (site, service) = site_chat(&loaded, &rules, &site)?;
            let mut questions = Vec::new();
            for path in &set {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                questions.extend(
                    eval::parse_kb_questions(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                );
            }
            let mut right = [eval::Tally::default(); 4];
            let mut cited = [0usize; 4];
            for q in &questions {
                let answer = service.answer(&q.question, q.lang);
                let missing = eval::missing_facts(&answer.answer, &q.facts);
                right[q.lang as usize].correct += usize::from(missing.is_empty());
                right[q.lang as usize].total += 1;
                cited[q.lang as usize] += usize::from(!answer.sources.is_empty());
                if errors && !missing.is_empty() {
                    let lacks: Vec<String> = missing.iter().map(|f| f.join("/")).collect();
                    println!(
                        "{} {} [{}; {}] lacks {}  {}",
                        q.lang.code(),
                        q.market,
                        answer.intent,
                        answer.sources.join(","),
                        lacks.join("; "),
                        q.question
                    );
                }
            }
            println!(
                "site {}: {} questions from {}\n",
                site.name,
                questions.len(),
                paths(&set)
            );
            println!(
                "{:6} {:>22} {:>16}",
                "", "answers with the facts", "cited entries"
            );
            let mut all = eval::Tally::default();
            for locale in Locale::ALL {
                let t = right[locale as usize];
                all.correct += t.correct;
                all.total += t.total;
                println!(
                    "{:6} {:>22} {:>16}",
                    locale.code(),
                    t.to_string(),
                    cited[locale as usize]
                );
            }
            println!(
                "{:6} {:>22} {:>16}",
                "all",
                all.to_string(),
                cited.iter().sum::<usize>()
            );
        }
        ChatCommand::CrossIndustry { threshold } => {
            let base = base_chat().map_err(|d| anyhow::anyhow!("{}", d[0]))?;
            let params = edgeseo::chat::intent::TrainParams::default();
            let (report, industries) = eval::cross_industry(&base.examples, &params, threshold)?;
            println!(
                "base corpus: {} messages; each of {} industries tested by a model trained without it ({}); threshold {threshold}\n",
                base.examples.len(),
                industries.len(),
                industries.join(", ")
            );
            print!("{report}");
        }
    }
    Ok(())
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
                // Logged by the reload itself.
                _ = self.hup.recv() => { let _ = app.reload("SIGHUP"); }
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
