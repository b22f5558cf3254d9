//! Authentication on the shards: each shard checks CONNECT credentials against the password
//! file (read once at start, shared read-only) with a cache of its own, so the slow part (a
//! PBKDF2 hash, ~0.1 ms at 101 iterations) runs once per distinct username and password, and
//! a client retrying a wrong password costs a look-up, not a hash. The cache key is a SHA-256
//! of username and password, never the password itself.
//!
//! SIGHUP re-reads every `[auth]` file (`Sources::reload`) and swaps it in without a lock
//! (arc-swap); a shard sees the new version at its next check and drops its cache then. A
//! file that cannot be read keeps the old one in force, and the log says why.

use crate::config::{Config, ConfigError};
use crate::passwd::PasswordFile;
use ahash::AHashMap;
use codec::ReasonCode;
use sha2::{Digest, Sha256};
use shard::{Authenticator, ClientInfo, Verdict};
use std::path::Path;
use std::sync::Arc;

/// Reads and parses `path`; the error names the file.
fn load_file<T>(path: &Path, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the file of `[auth]` key `key`, when one is named; a problem naming the key (and,
/// from `read`, the line or entry) when it cannot be read.
fn read<T>(
    key: &str,
    path: Option<&Path>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    let Some(path) = path else { return Ok(None) };
    load_file(path, parse).map(Some).map_err(|e| {
        ConfigError::Invalid(vec![crate::config_schema::problem(
            &format!("auth.{key}"),
            &format!("{:?}", path.display().to_string()),
            &e,
        )])
    })
}

/// A file's current contents, swapped whole on reload; `version` tells caches to start over.
pub struct Versioned<T> {
    pub version: u64,
    pub file: T,
}

/// Shared by every shard; a reload stores a new version.
pub type Shared<T> = Arc<arc_swap::ArcSwap<Versioned<T>>>;

pub fn shared<T>(file: T) -> Shared<T> {
    Arc::new(arc_swap::ArcSwap::from_pointee(Versioned {
        version: 0,
        file,
    }))
}

fn store<T>(cell: &Shared<T>, file: T) {
    let version = cell.load().version + 1;
    cell.store(Arc::new(Versioned { version, file }));
}

/// Every file of `[auth]`, read: the shards' password, ban and access checks.
#[derive(Clone)]
pub struct Sources {
    pub passwords: Option<Shared<PasswordFile>>,
    pub acl: Option<Shared<crate::acl::AclFile>>,
    pub bans: Option<Shared<crate::bans::BanList>>,
}

impl Sources {
    pub fn load(config: &Config) -> Result<Sources, ConfigError> {
        let a = &config.auth;
        Ok(Sources {
            passwords: read(
                "password_file",
                a.password_file.as_deref(),
                PasswordFile::parse,
            )?
            .map(shared),
            acl: read(
                "acl_file",
                a.acl_file.as_deref(),
                crate::acl::AclFile::parse,
            )?
            .map(shared),
            bans: read(
                "ban_file",
                a.ban_file.as_deref(),
                crate::bans::BanList::parse,
            )?
            .map(shared),
        })
    }

    /// SIGHUP: re-reads the files in force; returns how many were swapped in and what kept
    /// others from it (those keep their old contents).
    pub fn reload(&self, config: &Config) -> (usize, Vec<String>) {
        let (mut done, mut problems) = (0, Vec::new());
        let mut note = |key: &str, r: Result<(), String>| match r {
            Ok(()) => done += 1,
            Err(e) => problems.push(format!("auth.{key}: {e}")),
        };
        if let (Some(cell), Some(path)) = (&self.passwords, &config.auth.password_file) {
            note(
                "password_file",
                load_file(path, PasswordFile::parse).map(|f| store(cell, f)),
            );
        }
        if let (Some(cell), Some(path)) = (&self.acl, &config.auth.acl_file) {
            note(
                "acl_file",
                load_file(path, crate::acl::AclFile::parse).map(|f| store(cell, f)),
            );
        }
        if let (Some(cell), Some(path)) = (&self.bans, &config.auth.ban_file) {
            note(
                "ban_file",
                load_file(path, crate::bans::BanList::parse).map(|f| store(cell, f)),
            );
        }
        (done, problems)
    }

    /// Gives shard `s` its own checkers over the shared files.
    pub fn install(&self, s: &mut shard::Shard) {
        if let Some(p) = &self.passwords {
            s.set_authenticator(Box::new(PasswordAuth::new(p.clone())));
        }
        if let Some(a) = &self.acl {
            s.set_authorizer(Box::new(crate::acl::AclAuthorizer(a.clone())));
        }
        if let Some(b) = &self.bans {
            s.set_admission(Box::new(crate::bans::BanCheck(b.clone())));
        }
    }
}

/// What the start-up line says about authentication, bans and access rules.
pub fn describe(config: &Config, sources: &Sources) -> String {
    let acl = match &config.auth.acl_file {
        Some(p) => format!("; access rules from {}", p.display()),
        None => "; no access rules (every topic open)".to_string(),
    };
    let bans = match &sources.bans {
        Some(b) => format!("; {} ban(s)", b.load().file.len()),
        None => String::new(),
    };
    let users = sources.passwords.as_ref().map(|p| p.load().file.len());
    format!("{}{acl}{bans}", describe_authn(config, users))
}

fn describe_authn(config: &Config, users: Option<usize>) -> String {
    let anonymous = if config.auth.anonymous_allowed() {
        "anonymous clients allowed"
    } else {
        "anonymous clients refused"
    };
    match (users, &config.auth.password_file) {
        (Some(n), Some(p)) => format!(
            "ringmq auth: password file {} ({n} users); {anonymous}",
            p.display(),
        ),
        _ => format!("ringmq auth: no authentication source; {anonymous}"),
    }
}

/// Cached outcomes per shard; the cache starts over when full.
const CACHE_MAX: usize = 16_384;

pub struct PasswordAuth {
    file: Shared<PasswordFile>,
    /// The file version the cache was filled from.
    version: u64,
    cache: AHashMap<[u8; 32], bool>,
}

impl PasswordAuth {
    pub fn new(file: Shared<PasswordFile>) -> Self {
        PasswordAuth {
            file,
            version: 0,
            cache: AHashMap::new(),
        }
    }
}

impl Authenticator for PasswordAuth {
    fn check(&mut self, client: &ClientInfo<'_>, password: Option<&[u8]>) -> Verdict {
        let Some(user) = client.username else {
            return Verdict::Ignore;
        };
        let password = password.unwrap_or_default();
        let mut d = Sha256::new();
        d.update((user.len() as u64).to_be_bytes());
        d.update(user.as_bytes());
        d.update(password);
        let key: [u8; 32] = d.finalize().into();
        let current = self.file.load();
        if current.version != self.version {
            // Reloaded: outcomes of the old file no longer hold.
            self.cache.clear();
            self.version = current.version;
        }
        let ok = match self.cache.get(&key) {
            Some(&ok) => ok,
            None => {
                let Some(ok) = current.file.verify(user, password) else {
                    return Verdict::Ignore;
                };
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache.insert(key, ok);
                ok
            }
        };
        if ok {
            Verdict::Allow
        } else {
            Verdict::Deny(ReasonCode::BadUserNameOrPassword)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwd::{Hash, DEFAULT_ITERATIONS};

    #[test]
    fn right_wrong_and_unknown_and_the_cache_answers_the_same() {
        let h = Hash::new(b"pw", DEFAULT_ITERATIONS).unwrap();
        let file = PasswordFile::parse(&format!("ann:{}\n", h.to_line_part())).unwrap();
        let cell = shared(file);
        let mut a = PasswordAuth::new(cell.clone());
        let who = |u| ClientInfo {
            client_id: "c",
            username: Some(u),
        };
        for _ in 0..2 {
            assert_eq!(a.check(&who("ann"), Some(b"pw")), Verdict::Allow);
            assert_eq!(
                a.check(&who("ann"), Some(b"nope")),
                Verdict::Deny(ReasonCode::BadUserNameOrPassword)
            );
            assert_eq!(
                a.check(&who("ann"), None),
                Verdict::Deny(ReasonCode::BadUserNameOrPassword)
            );
            assert_eq!(a.check(&who("bob"), Some(b"pw")), Verdict::Ignore);
        }
        assert_eq!(a.cache.len(), 3, "one entry per distinct user and password");
        // "ann" + "pw" and "annp" + "w" are different keys.
        assert_eq!(a.check(&who("annp"), Some(b"w")), Verdict::Ignore);
        // A reload with another password for ann: the cached Allow is gone.
        let h = Hash::new(b"new", DEFAULT_ITERATIONS).unwrap();
        store(
            &cell,
            PasswordFile::parse(&format!("ann:{}\n", h.to_line_part())).unwrap(),
        );
        assert_eq!(
            a.check(&who("ann"), Some(b"pw")),
            Verdict::Deny(ReasonCode::BadUserNameOrPassword)
        );
        assert_eq!(a.check(&who("ann"), Some(b"new")), Verdict::Allow);
    }
}
