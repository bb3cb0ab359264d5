//! Entry point of the cargo-fuzz target in `core/fuzz`: config text in, and what must hold for
//! every input. It lives in the crate, compiled and unit-tested with it, so a change to the loader
//! keeps the fuzz target building; the test below replays the committed seed corpus through it.
//!
//! Owns: the fuzzing invariants of the config loader. Must not: be called by the gateway.

use crate::config::{load_str, redacted_json};

/// Config loader: TOML text (lossy UTF-8) to a validated config or errors. Never panics; a refused
/// config names the file and a line inside the text for every error, each with a reason; the
/// redacted JSON view (admin API) never panics either.
pub fn config_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let _ = redacted_json(&text);
    if let Err(errors) = load_str(&text, "fuzz.toml") {
        assert!(!errors.is_empty(), "a refused config says why");
        for e in &errors {
            assert_eq!(e.file, "fuzz.toml");
            let line = e.line.unwrap_or_else(|| panic!("no line for {e:?}"));
            assert!((1..=lines).contains(&line), "line {line} outside 1..={lines}: {e:?}");
            assert!(!e.message.is_empty(), "empty reason: {e:?}");
        }
        let _ = errors.to_string();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_seed_corpus_passes_its_invariants() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/config_text");
        let mut n = 0;
        for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = file.expect("dir entry").path();
            super::config_text(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
            n += 1;
        }
        assert!(n >= 3, "too few seeds");
    }
}
