//! The rule parsers on arbitrary text: one file of a complete site (site.toml, pages.toml,
//! products.csv, a keyword CSV, a PO translation memory, the chat's intents.csv or answers.toml)
//! replaced by the input, the rules loaded as `check` and a reload do. A broken file must come
//! back as diagnostics; it must never panic.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgeseo::config::Rules;
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 7] = [
    "site.toml",
    "pages.toml",
    "products.csv",
    "keywords/id.csv",
    "translations/id.po",
    "chat/intents.csv",
    "chat/answers.toml",
];

/// The fixture site (small, so that thousands of loads a second are possible) with the demo's
/// chat files and a `[chat]` table, made once per process; each run rewrites one file of it.
fn rules_dir() -> &'static (tempfile::TempDir, PathBuf) {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("shop");
        copy_dir(&root.join("tests/fixtures/rules/shop"), &site);
        copy_dir(&root.join("rules/demo-supplier/chat"), &site.join("chat"));
        let toml = std::fs::read_to_string(site.join("site.toml")).unwrap();
        std::fs::write(site.join("site.toml"), format!("{toml}\n[chat]\n")).unwrap();
        (tmp, site)
    })
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let target = dst.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fuzz_target!(init: { rules_dir(); }, |data: &[u8]| {
    let [which, text @ ..] = data else {
        return;
    };
    let (tmp, site) = rules_dir();
    let file = site.join(FILES[usize::from(*which) % FILES.len()]);
    let original = std::fs::read(&file).unwrap_or_default();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, text).unwrap();
    let _ = Rules::load(tmp.path());
    std::fs::write(&file, original).unwrap();
});
