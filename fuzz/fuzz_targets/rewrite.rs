//! The streaming rewriter on arbitrary bytes: any page, cut into chunks of any size, in any
//! charset edgeseo rewrites, in any content coding (well-formed or not), for every locale, with
//! and without the translation memory. It may refuse a body; it must never panic.
#![no_main]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use edgeseo::codec::Coding;
use edgeseo::config::{Rules, SiteSeo};
use edgeseo::locale::Locale;
use edgeseo::rewrite::{RewriteOptions, rewrite_bytes};
use edgeseo::seo::{HeadPlan, PageRequest};
use libfuzzer_sys::fuzz_target;

fn seo() -> &'static Arc<SiteSeo> {
    static SEO: OnceLock<Arc<SiteSeo>> = OnceLock::new();
    SEO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rules");
        let rules = Rules::load(&dir).expect("fixture rules load");
        rules.sites[0].seo.clone().expect("fixture site has SEO rules")
    })
}

const CHARSETS: [Option<&str>; 8] = [
    None,
    Some("utf-8"),
    Some("windows-1252"),
    Some("shift_jis"),
    Some("gbk"),
    Some("windows-874"),
    Some("windows-1258"),
    Some("euc-kr"),
];

const CODINGS: [Coding; 5] = [
    Coding::Identity,
    Coding::Gzip,
    Coding::Deflate,
    Coding::Brotli,
    Coding::Zstd,
];

fn encode(coding: Coding, html: &[u8]) -> Vec<u8> {
    match coding {
        Coding::Identity => html.to_vec(),
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(html).unwrap();
            e.finish().unwrap()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(html).unwrap();
            e.finish().unwrap()
        }
        Coding::Brotli => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 1, 20);
                e.write_all(html).unwrap();
            }
            out
        }
        Coding::Zstd => zstd::encode_all(html, 1).unwrap(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [locale, charset, coding, output, chunk, html @ ..] = data else {
        return;
    };
    let seo = seo();
    let locale = Locale::ALL[usize::from(*locale) % Locale::ALL.len()];
    let charset = CHARSETS[usize::from(*charset) % CHARSETS.len()]
        .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()));
    let coding_index = usize::from(*coding);
    let input_coding = CODINGS[coding_index % CODINGS.len()];
    // Every other round the body is sent as is, whatever coding it claims: broken streams.
    let body = if coding_index / CODINGS.len() % 2 == 0 {
        encode(input_coding, html)
    } else {
        html.to_vec()
    };
    let plan = HeadPlan::build(
        seo,
        PageRequest {
            locale,
            origin_path: "/products/air-fryer",
            base: "https://shop.example",
        },
    );
    let opts = RewriteOptions {
        plan: Arc::new(plan),
        charset,
        coding: input_coding,
        output: CODINGS[usize::from(*output) % CODINGS.len()],
        max_memory: seo.rewrite.max_memory,
        own_host: Arc::new(|h: &str| h == "shop.example"),
        body_end: Some("<script src=\"/__edgeseo/widget.js\" defer></script>".into()),
        translations: seo.translations.get(&locale).cloned(),
    };
    let _ = rewrite_bytes(&body, 1 + usize::from(*chunk) * 7, opts);
});
