//! `ApiKeys`: the API keys of one shard and generation: the keys listed in the config plus those
//! of a hot-reloaded keys file, looked up by the SHA-256 of the presented key.
//!
//! Owns: the shard-local map (rebuilt when the file's generation changes, checked with one atomic
//! load per lookup) and the identities of API-key consumers. Must not: store or log a key in
//! clear (only hashes are ever held), or read the file (the auth thread does).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use portcullis_core::config::{ApiKeyEntry, ApiKeysConfig};
use portcullis_core::pipeline::Identity;

use super::accept::{Accepted, IdentityHeaders};
use super::service::{AuthService, KeysFile};
use super::token::CompiledSource;

/// SHA-256 of an API key.
pub type TokenHash = [u8; 32];

/// Hashes an API key (SHA-256, the form keys are configured in).
pub fn token_hash(key: &[u8]) -> TokenHash {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

type Table = HashMap<TokenHash, Rc<Accepted>>;

/// The compiled `[auth.api_keys]` of one shard.
#[derive(Debug)]
pub struct ApiKeys {
    /// Where keys are read from.
    pub sources: Vec<CompiledSource>,
    inline: Vec<ApiKeyEntry>,
    file: Option<Arc<KeysFile>>,
    /// (file generation, table) as last built.
    table: RefCell<(u64, Rc<Table>)>,
    source_name: Rc<str>,
}

fn decode_hex(s: &str) -> Option<TokenHash> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

impl ApiKeys {
    /// Compiles the section; a keys file is registered with `service` (read once now).
    pub fn build(
        cfg: &ApiKeysConfig,
        service: &AuthService,
        rules: &IdentityHeaders,
    ) -> Result<ApiKeys, String> {
        let file = match &cfg.keys_file {
            Some(path) => Some(service.keys_file(path, cfg.watch_interval.0)?),
            None => None,
        };
        let keys = ApiKeys {
            sources: cfg.from.iter().map(CompiledSource::new).collect(),
            inline: cfg.keys.clone(),
            file,
            table: RefCell::new((u64::MAX, Rc::new(Table::new()))),
            source_name: Rc::from("api_key"),
        };
        keys.refresh(rules);
        Ok(keys)
    }

    fn refresh(&self, rules: &IdentityHeaders) -> Rc<Table> {
        let generation = self.file.as_ref().map_or(0, |f| f.generation());
        {
            let t = self.table.borrow();
            if t.0 == generation {
                return Rc::clone(&t.1);
            }
        }
        let from_file = self.file.as_ref().map(|f| f.current());
        let mut table = Table::new();
        for entry in self.inline.iter().chain(from_file.iter().flat_map(|v| v.iter())) {
            let Some(hash) = decode_hex(&entry.sha256) else { continue };
            let id = Identity {
                source: Rc::clone(&self.source_name),
                consumer: Bytes::from(entry.consumer.clone()),
                subject: None,
                tier: entry.tier.as_deref().map(Rc::from),
                scopes: entry.scopes.iter().map(|s| Box::from(s.as_str())).collect(),
                roles: entry.roles.iter().map(|s| Box::from(s.as_str())).collect(),
                claims: Box::default(),
                expires_at: 0,
            };
            table.entry(hash).or_insert_with(|| Rc::new(Accepted::new(id, rules)));
        }
        let table = Rc::new(table);
        *self.table.borrow_mut() = (generation, Rc::clone(&table));
        table
    }

    /// The consumer of `key`, if it is a known key. The map is keyed by SHA-256, so the
    /// comparison never touches the key itself and its timing reveals nothing usable about it.
    pub fn lookup(&self, key: &[u8], rules: &IdentityHeaders) -> Option<Rc<Accepted>> {
        let hash = token_hash(key);
        self.refresh(rules).get(&hash).cloned()
    }
}
