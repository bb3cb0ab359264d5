//! Entry point of the cargo-fuzz target in `policies/fuzz`: RESP reply bytes in, and what must
//! hold for every input. It lives in the crate, compiled and unit-tested with it, so a change to
//! the parser keeps the fuzz target building; the test below replays the committed seed corpus.
//!
//! Owns: the fuzzing invariants of the RESP reply parser. Must not: be called by the gateway.

use std::io::Cursor;

use crate::redis::read_value;

/// RESP2 replies, read one after another from the input until one fails: never panics, and never
/// reads past the input.
pub fn resp_replies(data: &[u8]) {
    let mut r = Cursor::new(data);
    while (r.position() as usize) < data.len() {
        if read_value(&mut r, 0).is_err() {
            break;
        }
    }
    assert!(r.position() as usize <= data.len());
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_seed_corpus_passes_its_invariants() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/resp_replies");
        let mut n = 0;
        for file in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = file.expect("dir entry").path();
            super::resp_replies(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
            n += 1;
        }
        assert!(n >= 3, "too few seeds");
    }
}
