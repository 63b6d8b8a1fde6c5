//! The chat's message path on arbitrary text: language identification, intent classification
//! and the answer, as `/api/chat` runs them for every message a buyer sends. It must never
//! panic, whatever the bytes (they arrive as JSON strings, so any Unicode is possible).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use edgeseo::chat::ChatService;
use edgeseo::config::Rules;
use edgeseo::locale::Locale;
use libfuzzer_sys::fuzz_target;

fn chat() -> &'static ChatService {
    static CHAT: OnceLock<ChatService> = OnceLock::new();
    CHAT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let rules = Rules::load(&dir).expect("demo rules load");
        ChatService::for_site(&rules.sites[0], None)
            .expect("chat builds")
            .expect("the demo has a chat")
    })
}

// Training the model takes seconds: done before the first input, not inside its time limit.
fuzz_target!(init: { chat(); }, |data: &[u8]| {
    let [fallback, text @ ..] = data else {
        return;
    };
    let message = String::from_utf8_lossy(text);
    let fallback = Locale::ALL[usize::from(*fallback) % Locale::ALL.len()];
    let _ = chat().answer(&message, fallback);
});
