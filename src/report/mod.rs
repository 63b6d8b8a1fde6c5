//! The certification evidence an operator hands in: `report.json`, `report.html` (`html.rs`) and
//! `report.pdf` in an output directory, every input and output named by its SHA-256, and
//! `SHA256SUMS` over the directory's files.
//!
//! Owns: the report's versioned schema (`edgeseo-report/1`), judging a stress run against the
//! certification's thresholds, writing the directory (a later run of another kind adds its
//! section to the same report; the PDF is printed from the HTML by a headless Chromium when one
//! is installed), and `verify-report`, which re-hashes everything and names what changed.
//! `SHA256SUMS` is in coreutils' format, so `sha256sum -c SHA256SUMS` checks it too.
//! Must never: write a verdict without the figures it rests on, or pass a directory in which a
//! listed file changed, went missing, or appeared unlisted.

mod html;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::AuditResult;
use crate::stress::StressResult;

/// Version of the report's JSON layout; readers check it before anything else.
pub const SCHEMA: &str = "edgeseo-report/1";
pub const REPORT_FILE: &str = "report.json";
pub const HTML_FILE: &str = "report.html";
pub const PDF_FILE: &str = "report.pdf";
/// Longest a headless browser may take to print the report.
const PRINT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);
pub const SUMS_FILE: &str = "SHA256SUMS";

/// The certification's chat thresholds.
pub const MIN_RATE: f64 = 500.0;
pub const MAX_MEAN_LATENCY_MS: f64 = 1200.0;
pub const MAX_ANSWER_MS: f64 = 3000.0;
pub const MIN_INTENT_ACCURACY: f64 = 0.92;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an edgeseo report: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// RFC 3339, UTC, when the report was last written.
    pub created: String,
    pub edgeseo: Build,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<StressSection>,
    /// Every file the runs read, by role (`message set`, `rules`, ...).
    pub inputs: Vec<FileHash>,
    /// The other files written with this one (`report.html`).
    #[serde(default)]
    pub outputs: Vec<FileHash>,
}

/// The binary that produced the report: its version and the SHA-256 of its own executable, which
/// names the exact build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    pub target: String,
    pub executable_sha256: String,
}

impl Build {
    pub fn current() -> Build {
        let executable_sha256 = std::env::current_exe()
            .and_then(std::fs::read)
            .map(|bytes| sha256_hex(&bytes))
            .unwrap_or_else(|e| format!("unreadable: {e}"));
        Build {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
            executable_sha256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub role: String,
    /// As given on the command line, or `builtin:<path in the source tree>` for data compiled in.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

impl FileHash {
    pub fn of(role: &str, path: &str, bytes: &[u8]) -> FileHash {
        FileHash {
            role: role.to_owned(),
            path: path.to_owned(),
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressSection {
    pub result: StressResult,
    pub criteria: Vec<Criterion>,
    pub passed: bool,
}

/// One requirement of the certification, with the figure measured and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Criterion {
    pub name: String,
    pub required: String,
    pub measured: String,
    pub passed: bool,
}

impl StressSection {
    /// Judges `result` by the certification's thresholds.
    pub fn judge(result: StressResult) -> StressSection {
        let all = result.accuracy.iter().find(|a| a.lang == "all");
        let intent = all.map_or(0.0, |a| a.intent());
        let unanswered = result.errors + result.rate_limited + result.timeouts;
        let criteria = vec![
            Criterion {
                name: "throughput".into(),
                required: format!("≥ {MIN_RATE} answers/s"),
                measured: format!("{:.1} answers/s", result.achieved_rate),
                passed: result.achieved_rate >= MIN_RATE,
            },
            Criterion {
                name: "average latency".into(),
                required: format!("≤ {MAX_MEAN_LATENCY_MS} ms"),
                measured: format!("{:.1} ms", result.latency_ms.mean),
                passed: result.ok > 0 && result.latency_ms.mean <= MAX_MEAN_LATENCY_MS,
            },
            Criterion {
                name: "every message answered within 3 s".into(),
                required: format!("max ≤ {MAX_ANSWER_MS} ms, no error, limit or timeout"),
                measured: format!(
                    "max {:.1} ms, {unanswered} unanswered",
                    result.latency_ms.max
                ),
                passed: result.latency_ms.max <= MAX_ANSWER_MS && unanswered == 0,
            },
            Criterion {
                name: "intent recognition".into(),
                required: format!("≥ {:.0} %", MIN_INTENT_ACCURACY * 100.0),
                measured: format!("{:.1} %", intent * 100.0),
                passed: intent >= MIN_INTENT_ACCURACY,
            },
        ];
        let passed = criteria.iter().all(|c| c.passed);
        StressSection {
            result,
            criteria,
            passed,
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Report {
    /// The report already in `dir`, or a new one; either way stamped now by this build.
    pub fn open(dir: &Path) -> Result<Report, ReportError> {
        let mut report = read(dir)?.unwrap_or_else(|| Report {
            schema: SCHEMA.to_owned(),
            created: String::new(),
            edgeseo: Build::current(),
            audit: None,
            stress: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        report.created = now();
        report.edgeseo = Build::current();
        Ok(report)
    }

    /// Replaces the inputs of `role` with `inputs`.
    pub fn set_inputs(&mut self, role: &str, inputs: Vec<FileHash>) {
        self.inputs.retain(|i| i.role != role);
        self.inputs.extend(inputs);
    }
}

/// The report already in `dir`, if any (another kind of run adds its section to it).
pub fn read(dir: &Path) -> Result<Option<Report>, ReportError> {
    let path = dir.join(REPORT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let invalid = |message: String| ReportError::Invalid {
        path: path.clone(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    if value["schema"] != SCHEMA {
        return Err(invalid(format!(
            "schema {} (this edgeseo reads {SCHEMA})",
            value["schema"]
        )));
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

/// Writes `dir/report.html` from `report`, then `report` (with the page's hash) as
/// `dir/report.json`, then `dir/SHA256SUMS` over every file in `dir`.
pub fn write(dir: &Path, report: &Report) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let page = html::render(report);
    let path = dir.join(HTML_FILE);
    std::fs::write(&path, &page).map_err(io(&path))?;
    let mut report = report.clone();
    report.outputs = vec![FileHash::of("HTML report", HTML_FILE, page.as_bytes())];
    let pdf = dir.join(PDF_FILE);
    // A PDF from an earlier run would no longer match this report.
    let _ = std::fs::remove_file(&pdf);
    match print_pdf(&path, &pdf) {
        Ok(()) => {
            let bytes = std::fs::read(&pdf).map_err(io(&pdf))?;
            report
                .outputs
                .push(FileHash::of("PDF report", PDF_FILE, &bytes));
        }
        Err(why) => tracing::warn!("{PDF_FILE} not written: {why}"),
    }
    let path = dir.join(REPORT_FILE);
    let mut json = serde_json::to_string_pretty(&report).expect("a report serializes");
    json.push('\n');
    std::fs::write(&path, json).map_err(io(&path))?;
    let mut sums = String::new();
    for (name, bytes) in files(dir)? {
        sums.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    let path = dir.join(SUMS_FILE);
    std::fs::write(&path, sums).map_err(io(&path))
}

/// Prints `html` to `pdf` with a headless Chromium: it shapes Thai and Vietnamese and embeds the
/// fonts it used. `EDGESEO_CHROMIUM` names the browser, else `chromium`, `chromium-browser` or
/// `google-chrome` from the PATH.
fn print_pdf(html: &Path, pdf: &Path) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let candidates = match std::env::var("EDGESEO_CHROMIUM") {
        Ok(named) => vec![named],
        Err(_) => ["chromium", "chromium-browser", "google-chrome"]
            .map(str::to_owned)
            .to_vec(),
    };
    let html = std::fs::canonicalize(html).map_err(|e| e.to_string())?;
    let profile = print_profile_dir()?;
    for browser in candidates {
        let child = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(format!("file://{}", html.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else { continue };
        let started = std::time::Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < PRINT_TIMEOUT => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let _ = std::fs::remove_dir_all(&profile);
        return match status {
            Some(s) if s.success() && pdf.exists() => Ok(()),
            Some(s) => Err(format!("{browser} exited with {s}")),
            None => Err(format!("{browser} did not finish within {PRINT_TIMEOUT:?}")),
        };
    }
    let _ = std::fs::remove_dir_all(&profile);
    Err("no headless Chromium found (set EDGESEO_CHROMIUM or install chromium)".into())
}

/// A fresh directory for the browser's profile, so that a running browser is not disturbed.
fn print_profile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!(
        "edgeseo-print-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The files of `dir` but `SHA256SUMS`, by name.
fn files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, ReportError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == SUMS_FILE || !entry.file_type().map_err(io(dir))?.is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(io(&entry.path()))?;
        out.insert(name, bytes);
    }
    Ok(out)
}

/// What `verify` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Listed files whose content matches.
    pub intact: Vec<String>,
    pub changed: Vec<String>,
    pub missing: Vec<String>,
    /// Files in the directory that `SHA256SUMS` does not list.
    pub unlisted: Vec<String>,
    /// Inputs named in the report that still exist where they were read and differ now (the run
    /// would not reproduce from them; the report itself may be intact).
    pub inputs_changed: Vec<String>,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.unlisted.is_empty()
    }
}

/// Re-hashes the report directory `dir` against its `SHA256SUMS`, and the report's inputs that
/// can still be read.
pub fn verify(dir: &Path) -> Result<Verification, ReportError> {
    let sums_path = dir.join(SUMS_FILE);
    let sums = std::fs::read_to_string(&sums_path).map_err(io(&sums_path))?;
    let mut listed = BTreeMap::new();
    for (n, line) in sums.lines().enumerate() {
        let parsed = line
            .split_once("  ")
            .filter(|(hash, name)| hash.len() == 64 && !name.is_empty());
        let Some((hash, name)) = parsed else {
            return Err(ReportError::Invalid {
                path: sums_path.clone(),
                message: format!("line {}: expected `<sha256>  <file>`", n + 1),
            });
        };
        listed.insert(name.to_owned(), hash.to_owned());
    }
    let present = files(dir)?;
    let mut v = Verification::default();
    for (name, hash) in &listed {
        match present.get(name) {
            None => v.missing.push(name.clone()),
            Some(bytes) if sha256_hex(bytes) == *hash => v.intact.push(name.clone()),
            Some(_) => v.changed.push(name.clone()),
        }
    }
    v.unlisted = present
        .keys()
        .filter(|name| !listed.contains_key(*name))
        .cloned()
        .collect();
    if v.passed()
        && let Some(report) = read(dir)?
    {
        for input in &report.inputs {
            if let Ok(bytes) = std::fs::read(&input.path)
                && sha256_hex(&bytes) != input.sha256
            {
                v.inputs_changed.push(input.path.clone());
            }
        }
    }
    Ok(v)
}

/// Now, as RFC 3339 in UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_text() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
