//! Authentication on the shards: each shard checks CONNECT credentials against the password
//! file (read once at start, shared read-only) with a cache of its own, so the slow part (a
//! PBKDF2 hash, ~0.1 ms at 101 iterations) runs once per distinct username and password, and
//! a client retrying a wrong password costs a look-up, not a hash. The cache key is a SHA-256
//! of username and password, never the password itself.

use crate::config::{Config, ConfigError};
use crate::passwd::PasswordFile;
use ahash::AHashMap;
use codec::ReasonCode;
use sha2::{Digest, Sha256};
use shard::{Authenticator, ClientInfo, Verdict};
use std::sync::Arc;

/// The password file the configuration names, read; a problem naming `auth.password_file`
/// when it cannot be.
pub fn load(config: &Config) -> Result<Option<Arc<PasswordFile>>, ConfigError> {
    let Some(path) = &config.auth.password_file else {
        return Ok(None);
    };
    PasswordFile::load(path)
        .map(|f| Some(Arc::new(f)))
        .map_err(|e| {
            ConfigError::Invalid(vec![crate::config_schema::problem(
                "auth.password_file",
                &format!("{:?}", path.display().to_string()),
                &e,
            )])
        })
}

/// The ACL file the configuration names, read; a problem naming `auth.acl_file` when it
/// cannot be.
pub fn load_acl(config: &Config) -> Result<Option<Arc<crate::acl::AclFile>>, ConfigError> {
    let Some(path) = &config.auth.acl_file else {
        return Ok(None);
    };
    crate::acl::AclFile::load(path)
        .map(|f| Some(Arc::new(f)))
        .map_err(|e| {
            ConfigError::Invalid(vec![crate::config_schema::problem(
                "auth.acl_file",
                &format!("{:?}", path.display().to_string()),
                &e,
            )])
        })
}

/// Every file of `[auth]`, read: the shards' password, ban and access checks.
pub struct Sources {
    pub passwords: Option<Arc<PasswordFile>>,
    pub acl: Option<Arc<crate::acl::AclFile>>,
    pub bans: Option<Arc<crate::bans::BanList>>,
}

impl Sources {
    pub fn load(config: &Config) -> Result<Sources, ConfigError> {
        let bans = match &config.auth.ban_file {
            None => None,
            Some(path) => Some(Arc::new(crate::bans::BanList::load(path).map_err(|e| {
                ConfigError::Invalid(vec![crate::config_schema::problem(
                    "auth.ban_file",
                    &format!("{:?}", path.display().to_string()),
                    &e,
                )])
            })?)),
        };
        Ok(Sources {
            passwords: load(config)?,
            acl: load_acl(config)?,
            bans,
        })
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
        Some(b) => format!("; {} ban(s)", b.len()),
        None => String::new(),
    };
    format!(
        "{}{acl}{bans}",
        describe_authn(config, sources.passwords.as_deref())
    )
}

fn describe_authn(config: &Config, file: Option<&PasswordFile>) -> String {
    let anonymous = if config.auth.anonymous_allowed() {
        "anonymous clients allowed"
    } else {
        "anonymous clients refused"
    };
    match (file, &config.auth.password_file) {
        (Some(f), Some(p)) => format!(
            "ringmq auth: password file {} ({} users); {anonymous}",
            p.display(),
            f.len()
        ),
        _ => format!("ringmq auth: no authentication source; {anonymous}"),
    }
}

/// Cached outcomes per shard; the cache starts over when full.
const CACHE_MAX: usize = 16_384;

pub struct PasswordAuth {
    file: Arc<PasswordFile>,
    cache: AHashMap<[u8; 32], bool>,
}

impl PasswordAuth {
    pub fn new(file: Arc<PasswordFile>) -> Self {
        PasswordAuth {
            file,
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
        let ok = match self.cache.get(&key) {
            Some(&ok) => ok,
            None => {
                let Some(ok) = self.file.verify(user, password) else {
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
        let mut a = PasswordAuth::new(Arc::new(file));
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
    }
}
