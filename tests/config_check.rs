//! `portcullis check`: exit status and `path: message (file:line)` errors with exact lines, and
//! `portcullis run` refusing to start on an invalid file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::gateway::binary;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config");
    path
}

fn check(path: &Path) -> Output {
    Command::new(binary())
        .args(["check", "--config"])
        .arg(path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run portcullis check")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `error:` lines of a refused file.
fn error_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(|l| l["error: ".len()..].to_owned())
        .collect()
}

const GOOD: &str = r#"[[listeners]]
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
endpoints = ["127.0.0.1:9"]

[[routes]]
prefix = "/"
upstream = "app"
"#;

#[test]
fn a_valid_file_passes_with_exit_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "good.toml", GOOD);
    let out = check(&path);
    assert!(out.status.success(), "exit {:?}; stderr: {}", out.status, stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("{}: ok (1 listeners, 1 upstreams, 1 routes)", path.display()),
        "summary line"
    );
}

#[test]
fn the_shipped_examples_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["examples/minimal.toml", "examples/gateway.toml"] {
        let out = check(&root.join(name));
        assert!(out.status.success(), "{name}: exit {:?}; stderr: {}", out.status, stderr(&out));
    }
}

#[test]
fn validation_errors_are_all_reported_with_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"[[listeners]]
bind = "127.0.0.1:0"

[[upstreams]]
name = "app"
endpoints = ["127.0.0.1:9"]

[[routes]]
prefix = "/"
upstream = "nope"

[[routes]]
path = "/a"
upstream = "app"
rewrite_prefix = "/x"

[[routes]]
prefix = "/b"
upstream = "app"
methods = ["get"]
"#;
    let path = write(dir.path(), "bad.toml", text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let file = path.display().to_string();
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 3, "every problem is reported: {errors:#?}");
    assert_eq!(errors[0], format!("routes[0].upstream: unknown upstream \"nope\" ({file}:10)"));
    assert!(errors[1].starts_with("routes[1].rewrite_prefix: "), "{}", errors[1]);
    assert!(errors[1].ends_with(&format!("({file}:15)")), "{}", errors[1]);
    assert!(errors[2].starts_with("routes[2].methods"), "{}", errors[2]);
    assert!(errors[2].ends_with(&format!("({file}:20)")), "{}", errors[2]);
    assert!(stderr(&out).contains(&format!("{file}: 3 error(s)")), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing on stdout for a refused file");
}

#[test]
fn a_bad_duration_names_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = r#"[[listeners]]
bind = "127.0.0.1:0"

[http]
idle_timeout = "60s"
header_timeout = "10 s"

[[upstreams]]
name = "app"
endpoints = ["127.0.0.1:9"]

[[routes]]
prefix = "/"
upstream = "app"
"#;
    let path = write(dir.path(), "duration.toml", text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("http.header_timeout: "), "{}", errors[0]);
    assert!(errors[0].contains("10 s"), "the message quotes the value: {}", errors[0]);
    assert!(errors[0].ends_with(&format!("({}:6)", path.display())), "{}", errors[0]);

    // A fractional route timeout further down.
    let text = GOOD.replace("upstream = \"app\"\n", "upstream = \"app\"\ntimeout = \"1.5s\"\n");
    let path = write(dir.path(), "fraction.toml", &text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("routes[0].timeout: "), "{}", errors[0]);
    assert!(errors[0].ends_with(&format!("({}:11)", path.display())), "{}", errors[0]);
}

#[test]
fn unknown_keys_and_syntax_errors_name_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = GOOD.replace("prefix = \"/\"\n", "prefix = \"/\"\nupstreem = \"typo\"\n");
    let path = write(dir.path(), "typo.toml", &text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("upstreem"), "{}", errors[0]);
    assert!(errors[0].ends_with(&format!("({}:10)", path.display())), "{}", errors[0]);

    let text = GOOD.replace("name = \"app\"", "name = app");
    let path = write(dir.path(), "syntax.toml", &text);
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert!(!errors.is_empty());
    assert!(errors[0].ends_with(&format!("({}:5)", path.display())), "{}", errors[0]);
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = check(&dir.path().join("absent.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read config file"), "{}", stderr(&out));
}

#[test]
fn run_refuses_an_invalid_file_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.toml", &GOOD.replace("upstream = \"app\"", "upstream = \"ghost\""));
    let out = Command::new(binary())
        .args(["run", "--config"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run portcullis run");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("routes[0].upstream: unknown upstream \"ghost\" ({}:10)", path.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "never printed a listening line");
}

/// `check` output for `text` (written as `name` in a fresh directory, which is its working
/// directory) with `env` set: (exit code, error lines, the config path).
fn check_in(name: &str, text: &str, env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), name, text);
    let mut cmd = Command::new(binary());
    cmd.args(["check", "--config"]).arg(&path).current_dir(dir.path()).env("NO_COLOR", "1");
    cmd.env_remove("PORTCULLIS_TEST_UNSET_SECRET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run portcullis check");
    (out.status.code(), error_lines(&out), path.display().to_string())
}

const JWT_ROUTE: &str = "\n[[auth.jwt]]\nname = \"idp\"\nissuer = \"https://idp\"\n";

#[test]
fn check_builds_the_filter_chain_like_run() {
    // A missing JWT pem_file: the key's line.
    let text =
        format!("{GOOD}{JWT_ROUTE}algorithms = [\"RS256\"]\nkeys = [{{ pem_file = \"absent.pem\" }}]\n");
    let (code, errors, file) = check_in("pem.toml", &text, &[]);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("auth.jwt[0].keys[0]: "), "{}", errors[0]);
    assert!(errors[0].contains("absent.pem"), "names the file: {}", errors[0]);
    assert!(errors[0].ends_with(&format!("({file}:16)")), "{}", errors[0]);

    // An unset secret_env, then the same file with the variable set passes.
    let text = format!(
        "{GOOD}{JWT_ROUTE}algorithms = [\"HS256\"]\nkeys = [{{ secret_env = \"PORTCULLIS_TEST_UNSET_SECRET\" }}]\n"
    );
    let (code, errors, file) = check_in("env.toml", &text, &[]);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(
        errors,
        [format!(
            "auth.jwt[0].keys[0]: environment variable PORTCULLIS_TEST_UNSET_SECRET is not set ({file}:16)"
        )]
    );
    let (code, errors, _) = check_in("env.toml", &text, &[("PORTCULLIS_TEST_UNSET_SECRET", "s3cret-s3cret")]);
    assert_eq!((code, errors), (Some(0), Vec::<String>::new()));

    // A missing API keys file: the [auth.api_keys] table's line.
    let text = format!("{GOOD}\n[auth.api_keys]\nkeys_file = \"no-such-keys.txt\"\n");
    let (code, errors, file) = check_in("keys.toml", &text, &[]);
    assert_eq!(code, Some(1), "{errors:?}");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("auth.api_keys"), "{}", errors[0]);
    assert!(errors[0].contains("no-such-keys.txt"), "{}", errors[0]);
    assert!(errors[0].ends_with(&format!("({file}:12)")), "{}", errors[0]);
}

const TLS_GOOD: &str = r#"[[upstreams]]
name = "app"
endpoints = ["127.0.0.1:9"]

[[routes]]
prefix = "/"
upstream = "app"

[[listeners]]
bind = "127.0.0.1:0"
[listeners.tls]
[[listeners.tls.certificates]]
cert = "CERT"
key = "KEY"
"#;

#[test]
fn certificate_errors_name_the_key_and_line() {
    let pki = common::tls::Pki::new();
    let (cert, key) = pki.issue("a", &["localhost"]);
    let (_, other_key) = pki.issue("b", &["localhost"]);
    let with = |c: &Path, k: &Path| {
        TLS_GOOD.replace("CERT", &c.display().to_string()).replace("KEY", &k.display().to_string())
    };
    let (code, errors, _) = check_in("tls.toml", &with(&cert, &key), &[]);
    assert_eq!((code, errors), (Some(0), Vec::<String>::new()), "a good pair passes");

    let (code, errors, file) = check_in("tls.toml", &with(Path::new("missing.crt"), &key), &[]);
    assert_eq!(code, Some(1));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("listeners[0].tls.certificates[0].cert: cannot read missing.crt"),
        "{}",
        errors[0]
    );
    assert!(errors[0].ends_with(&format!("({file}:13)")), "{}", errors[0]);

    let (code, errors, file) = check_in("tls.toml", &with(&cert, &other_key), &[]);
    assert_eq!(code, Some(1));
    assert!(errors[0].starts_with("listeners[0].tls.certificates[0].key: "), "{}", errors[0]);
    assert!(errors[0].contains("does not match"), "{}", errors[0]);
    assert!(errors[0].ends_with(&format!("({file}:14)")), "{}", errors[0]);

    // `run` refuses the same file with the same line, and never listens.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "tls.toml", &with(&cert, &other_key));
    let out = Command::new(binary())
        .args(["run", "--config"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = error_lines(&out);
    assert!(
        lines.iter().any(|l| l.starts_with("listeners[0].tls.certificates[0].key: ")
            && l.ends_with(&format!("({}:14)", path.display()))),
        "{lines:#?}\n{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "never printed a listening line");
}
