//! `portcullis demo`: the gateway on 127.0.0.1 with a built-in quick-start config in front of a
//! built-in echo upstream that answers with the request it saw, as JSON. The echo service also
//! serves the JWKS of a key the demo generates, so the protected routes verify real tokens.
//!
//! Owns: the demo config, the demo key and API key, and the echo service. Must not: be used by
//! `run`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use portcullis_core::config;
use portcullis_policies::authn::signing::SigningKey;
use portcullis_policies::authn::token_hash;

/// The quick-start config; `{port}` and `{echo}` are filled in at start.
const DEMO_CONFIG: &str = r#"
[server]
watch_config = false

[[listeners]]
name = "demo"
bind = "127.0.0.1:{port}"

[[listeners]]
name = "demo-tls"
bind = "127.0.0.1:{tls_port}"
[listeners.tls]
alpn = ["h2", "http/1.1"]
[[listeners.tls.certificates]]
cert = "{cert}"
key = "{key}"
[listeners.http3]

[[upstreams]]
name = "echo"
endpoints = ["127.0.0.1:{echo}"]

[[routes]]
name = "user"
path = "/users/{id}"
methods = ["GET"]
upstream = "echo"
auth = "none"
response_headers = { set = { "x-route" = "user" } }

[[routes]]
name = "api"
prefix = "/api"
rewrite_prefix = "/v1"
upstream = "echo"
auth = "none"
request_headers = { set = { "x-gateway" = "portcullis" }, remove = ["cookie"] }

[[routes]]
name = "limited"
prefix = "/limited"
upstream = "echo"
auth = "none"
rate_limits = ["demo"]

[[routes]]
name = "orders"
prefix = "/orders"
upstream = "echo"
authz = { scopes = ["orders:read"] }

[[routes]]
name = "admin"
prefix = "/admin"
upstream = "echo"
authz = { scopes = ["admin"] }

[ratelimit]
{redis}

[ratelimit.limits.demo]
key = ["client_ip"]
rate = 1
per = "2s"
burst = 4

[auth]
identity_headers = { x-user-id = "subject", x-consumer = "consumer", x-auth-scopes = "scopes" }

[[auth.jwt]]
name = "demo"
issuer = "https://demo.portcullis/"
audiences = ["demo"]
algorithms = ["ES256"]
jwks_uri = "http://127.0.0.1:{echo}/.well-known/jwks.json"

[auth.api_keys]
keys = [{ sha256 = "{keyhash}", consumer = "demo-key", tier = "free", scopes = ["orders:read"] }]
"#;

/// Makes a throwaway CA and a `localhost` certificate it signed in a fresh directory; returns
/// the paths of the CA certificate, the server certificate and its key.
fn demo_certificates() -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let dir = std::env::temp_dir().join(format!("portcullis-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Portcullis demo CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem())?;
    std::fs::write(&paths.1, cert.pem())?;
    std::fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

/// Runs the demo until SIGINT/SIGTERM.
pub fn run(port: u16, tls_port: u16, redis: Option<&str>) -> anyhow::Result<()> {
    let (ca, cert, key) = demo_certificates().context("cannot make the demo certificate")?;
    let signing = SigningKey::generate_es256("demo-1").map_err(anyhow::Error::msg)?;
    let jwks = Arc::new(SigningKey::jwks(&[&signing]).map_err(anyhow::Error::msg)?);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let token = signing
        .sign(&serde_json::json!({
            "iss": "https://demo.portcullis/", "aud": "demo", "sub": "alice", "exp": now + 3600,
            "scope": "orders:read"
        }))
        .map_err(anyhow::Error::msg)?;
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    // The token's ECDSA signature is random, so a key derived from it is unpredictable.
    let api_key = format!("demo-{}", &hex(&token_hash(token.as_bytes()))[..24]);
    let key_hash = hex(&token_hash(api_key.as_bytes()));
    let echo = TcpListener::bind("127.0.0.1:0").context("cannot bind the echo upstream")?;
    let echo_port = echo.local_addr()?.port();
    std::thread::Builder::new().name("echo-upstream".into()).spawn(move || serve_echo(echo, &jwks))?;
    let redis_line = redis.map(|r| format!("redis = {r:?}")).unwrap_or_default();
    let text = DEMO_CONFIG
        .replace("{port}", &port.to_string())
        .replace("{echo}", &echo_port.to_string())
        .replace("{redis}", &redis_line)
        .replace("{tls_port}", &tls_port.to_string())
        .replace("{cert}", &cert.display().to_string())
        .replace("{key}", &key.display().to_string())
        .replace("{keyhash}", &key_hash);
    let cfg = config::load_str(&text, "<demo>").map_err(|e| anyhow::anyhow!("built-in demo config: {e}"))?;
    let (sup, _telemetry) = crate::serve::start(None, cfg)?;
    let base = format!("http://127.0.0.1:{port}");
    println!();
    println!("Portcullis demo: gateway on {base}, echo upstream on 127.0.0.1:{echo_port}. Try:");
    println!("  curl -i {base}/users/42");
    println!(
        "  curl -i -X POST {base}/api/orders?limit=5 -H 'x-request-id: demo-1' -d '{{\"item\":\"book\"}}'"
    );
    println!("  curl -i {base}/nowhere");
    let tls = sup.bound.get(1).map_or(tls_port, |a| a.port());
    println!("HTTP/2 over TLS (certificate for localhost, signed by a CA made at start: {}):", ca.display());
    println!("  curl -i --http2 --cacert {} https://localhost:{tls}/users/42", ca.display());
    println!("HTTP/3 on the same port over UDP (curl here has no HTTP/3; this is Portcullis' own client):");
    println!("  cargo run --release -- h3 --cacert {} https://localhost:{tls}/users/42", ca.display());
    match redis {
        Some(r) => println!(
            "Rate limit on /limited (burst 4, then 1 per 2 s per client IP), reconciled through Redis at {r}:"
        ),
        None => println!(
            "Rate limit on /limited (burst 4, then 1 per 2 s per client IP); no Redis (--redis host:port), so local \
             limits only: the {} shards reconcile among themselves. Watch the 429s:",
            sup.shard_count()
        ),
    }
    println!(
        "  for i in $(seq 8); do curl -s -o /dev/null -D - {base}/limited | grep -iE '^(HTTP|retry-after|ratelimit)' | tr -d '\\r' | paste -sd' '; done"
    );
    println!("Authentication (a demo ES256 key served as JWKS by the echo upstream; token valid 1 h):");
    println!("  TOKEN={token}");
    println!(
        "  curl -i {base}/orders/7 -H \"Authorization: Bearer $TOKEN\"   # 200, upstream sees x-user-id"
    );
    println!("  curl -i {base}/orders/7                                        # 401 + WWW-Authenticate");
    println!("  curl -i {base}/admin -H \"Authorization: Bearer $TOKEN\"      # 403 insufficient_scope");
    println!("  curl -i {base}/orders/7 -H 'X-API-Key: {api_key}'   # 200 as consumer demo-key");
    println!("Ctrl-C drains and stops.");
    sup.run()?;
    Ok(())
}

fn serve_echo(listener: TcpListener, jwks: &Arc<String>) {
    for stream in listener.incoming().flatten() {
        let jwks = Arc::clone(jwks);
        let _ = std::thread::Builder::new().name("echo-conn".into()).spawn(move || {
            let _ = echo_conn(stream, &jwks);
        });
    }
}

/// Serves keep-alive requests on one connection, answering each with a JSON description (or,
/// for `/.well-known/jwks.json`, the demo key set).
fn echo_conn(stream: TcpStream, jwks: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let mut headers = serde_json::Map::new();
        let mut length = 0usize;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
                if n == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                if n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                }
                headers.insert(n, serde_json::Value::String(v));
            }
        }
        let body = if chunked { read_chunked(&mut reader)? } else { read_exact(&mut reader, length)? };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (target.clone(), None),
        };
        let out = serde_json::json!({
            "method": method,
            "path": path,
            "query": query,
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
        });
        let text = if path == "/.well-known/jwks.json" {
            jwks.to_owned()
        } else {
            serde_json::to_string_pretty(&out).unwrap_or_default() + "\n"
        };
        write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
    }
}

fn read_exact(reader: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut body = vec![0; n];
    reader.read_exact(&mut body)?;
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        if n == 0 {
            // Trailers until the empty line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        body.extend(read_exact(reader, n)?);
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}
