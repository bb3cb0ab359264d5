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
