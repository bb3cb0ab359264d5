//! Validation of how a section names its Redis: one server (`host:port`) or a cluster's seed
//! nodes, where the password comes from (an environment variable or a file, never inline), and
//! the CA file of TLS.
//!
//! Owns: the Redis connection rules shared by `[ratelimit]` and `[auth.revocation]`. Must not:
//! read the password (the policies crate does, at connect time) or touch Redis.

use super::Issues;
use crate::config::spans::KeyPath;

/// The Redis keys of one section, by their names in that section.
pub(super) struct RedisKeys<'a> {
    /// (key name, value) of the single-server address.
    pub server: (&'a str, Option<&'a str>),
    /// (key name, seeds) of the cluster.
    pub cluster: (&'a str, &'a [String]),
    /// (key name, value) of the user name.
    pub username: (&'a str, Option<&'a str>),
    /// (key name, value) of the password's environment variable.
    pub password_env: (&'a str, Option<&'a str>),
    /// (key name, value) of the password file.
    pub password_file: (&'a str, Option<&'a str>),
    /// (key name, value) of the TLS CA file.
    pub tls_ca_file: (&'a str, Option<&'a str>),
}

/// Checks one section's Redis keys; `required` = the section needs a Redis.
pub(super) fn check(k: &RedisKeys<'_>, required: bool, path: &KeyPath, out: &mut Issues) {
    let (server_key, server) = k.server;
    let (cluster_key, cluster) = k.cluster;
    if let Some(addr) = server {
        if addr.contains('@') || addr.contains("://") {
            out.push(
                path.key(server_key),
                format!(
                    "{server_key} must be host:port, like \"127.0.0.1:6379\"; credentials never go inline: use {} / {} / {}",
                    k.username.0, k.password_env.0, k.password_file.0
                ),
            );
        } else if !super::is_host_port(addr) {
            out.push(
                path.key(server_key),
                format!("{server_key} {addr:?} must be host:port, like \"127.0.0.1:6379\""),
            );
        }
    }
    for (i, seed) in cluster.iter().enumerate() {
        if !super::is_host_port(seed) {
            out.push(
                path.key(cluster_key).index(i),
                format!("cluster seed {seed:?} must be host:port, like \"127.0.0.1:7000\""),
            );
        }
    }
    if server.is_some() && !cluster.is_empty() {
        out.push(
            path.key(cluster_key),
            format!("set {server_key} (one server) or {cluster_key} (a cluster), not both"),
        );
    } else if required && server.is_none() && cluster.is_empty() {
        out.push(path.clone(), format!("{server_key} (host:port) or {cluster_key} (seed nodes) is required"));
    }
    let has_redis = server.is_some() || !cluster.is_empty();
    let (env_key, env) = k.password_env;
    let (file_key, file) = k.password_file;
    if env.is_some() && file.is_some() {
        out.push(path.key(file_key), format!("set {env_key} or {file_key}, not both"));
    }
    if env.is_some_and(|e| e.is_empty() || e.contains('=') || e.contains('\0')) {
        out.push(path.key(env_key), format!("{env_key} must name an environment variable"));
    }
    if file.is_some_and(str::is_empty) {
        out.push(path.key(file_key), format!("{file_key} must not be empty"));
    }
    let (user_key, user) = k.username;
    if let Some(u) = user {
        if u.is_empty() || !u.bytes().all(|b| b.is_ascii_graphic()) {
            out.push(path.key(user_key), format!("{user_key} must be non-empty visible ASCII"));
        } else if env.is_none() && file.is_none() {
            out.push(path.key(user_key), format!("{user_key} needs a password: set {env_key} or {file_key}"));
        }
    }
    let (ca_key, ca) = k.tls_ca_file;
    if ca.is_some_and(str::is_empty) {
        out.push(path.key(ca_key), format!("{ca_key} must not be empty"));
    }
    if !has_redis && (user.is_some() || env.is_some() || file.is_some() || ca.is_some()) {
        out.push(
            path.clone(),
            format!("Redis credentials are set but neither {server_key} nor {cluster_key} is"),
        );
    }
}
