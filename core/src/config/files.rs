//! The files a config refers to (certificates, keys, CA bundles, JWT keys, API key files,
//! endpoint files): one list of every such key, to read them or point them elsewhere.
//!
//! Owns: which keys name input files. Must not: read the files (loaders and builders do) or
//! name output files (the access log path is written, not read).

use super::model::Config;

/// Calls `visit(key_path, value)` for every input file the config names, in document order;
/// `visit` may rewrite the value (e.g. to a copy a config source wrote).
pub fn visit_input_files(cfg: &mut Config, visit: &mut dyn FnMut(&str, &mut String)) {
    for (i, l) in cfg.listeners.iter_mut().enumerate() {
        let Some(tls) = l.tls.as_mut() else { continue };
        for (j, c) in tls.certificates.iter_mut().enumerate() {
            let at = format!("listeners[{i}].tls.certificates[{j}]");
            visit(&format!("{at}.cert"), &mut c.cert);
            visit(&format!("{at}.key"), &mut c.key);
            if let Some(o) = c.ocsp.as_mut() {
                visit(&format!("{at}.ocsp"), o);
            }
        }
        if let Some(ca) = tls.client_ca.as_mut() {
            visit(&format!("listeners[{i}].tls.client_ca"), ca);
        }
    }
    for (i, u) in cfg.upstreams.iter_mut().enumerate() {
        if let Some(path) = u.endpoints_file.as_mut() {
            let mut s = path.display().to_string();
            visit(&format!("upstreams[{i}].endpoints_file"), &mut s);
            *path = s.into();
        }
        let Some(tls) = u.tls.as_mut() else { continue };
        for (key, file) in
            [("ca", &mut tls.ca), ("client_cert", &mut tls.client_cert), ("client_key", &mut tls.client_key)]
        {
            if let Some(f) = file.as_mut() {
                visit(&format!("upstreams[{i}].tls.{key}"), f);
            }
        }
    }
    for (i, j) in cfg.auth.jwt.iter_mut().enumerate() {
        if let Some(ca) = j.jwks_ca_file.as_mut() {
            visit(&format!("auth.jwt[{i}].jwks_ca_file"), ca);
        }
        for (k, key) in j.keys.iter_mut().enumerate() {
            for (name, file) in [("pem_file", &mut key.pem_file), ("jwk_file", &mut key.jwk_file)] {
                if let Some(f) = file.as_mut() {
                    visit(&format!("auth.jwt[{i}].keys[{k}].{name}"), f);
                }
            }
        }
    }
    if let Some(f) = cfg.auth.api_keys.as_mut().and_then(|a| a.keys_file.as_mut()) {
        visit("auth.api_keys.keys_file", f);
    }
}

/// Every input file the config names, as `(key path, file name)` in document order.
pub fn input_files(cfg: &Config) -> Vec<(String, String)> {
    let mut copy = cfg.clone();
    let mut out = Vec::new();
    visit_input_files(&mut copy, &mut |path, value| out.push((path.to_owned(), value.clone())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_file_key_is_listed_and_can_be_rewritten() {
        let text = "[[listeners]]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nclient_ca = \"ca.pem\"\n\
                    [[listeners.tls.certificates]]\ncert = \"a.crt\"\nkey = \"a.key\"\nocsp = \"a.ocsp\"\n\
                    [[upstreams]]\nname = \"app\"\nendpoints = [\"127.0.0.1:9\"]\n\
                    [upstreams.tls]\nca = \"up-ca.pem\"\nclient_cert = \"c.crt\"\nclient_key = \"c.key\"\n\
                    [auth.api_keys]\nkeys_file = \"keys.txt\"\n\
                    [[auth.jwt]]\nname = \"m\"\nissuer = \"i\"\nalgorithms = [\"RS256\"]\n\
                    jwks_uri = \"https://idp/jwks\"\njwks_ca_file = \"idp-ca.pem\"\n\
                    keys = [{ pem_file = \"k.pem\" }, { jwk_file = \"k.jwk\" }]\n";
        let (table, errors) = toml::de::DeTable::parse_recoverable(text);
        assert!(errors.is_empty(), "{errors:?}");
        let mut cfg: Config =
            serde::Deserialize::deserialize(toml::de::Deserializer::from(table)).expect("deserializes");
        cfg.upstreams[0].endpoints_file = Some("eps.txt".into());
        let names: Vec<String> = input_files(&cfg).into_iter().map(|(_, f)| f).collect();
        assert_eq!(
            names,
            [
                "a.crt",
                "a.key",
                "a.ocsp",
                "ca.pem",
                "eps.txt",
                "up-ca.pem",
                "c.crt",
                "c.key",
                "idp-ca.pem",
                "k.pem",
                "k.jwk",
                "keys.txt"
            ]
        );
        visit_input_files(&mut cfg, &mut |_, v| *v = format!("/copy/{v}"));
        assert!(input_files(&cfg).iter().all(|(_, f)| f.starts_with("/copy/")));
        assert_eq!(cfg.upstreams[0].endpoints_file.as_deref(), Some(std::path::Path::new("/copy/eps.txt")));
    }
}
