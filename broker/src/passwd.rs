//! Password files in Mosquitto's format, so users can bring theirs: one `user:hash` line per
//! user, the hash `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, what `mosquitto_passwd`
//! writes since 2.0) or `$6$SALT$HASH` (SHA-512 of password and salt, older Mosquitto), salt
//! and hash in base64. Blank lines and `#` comments are kept as they are by `ringmq passwd`.
//!
//! Reading is strict: a line that is not `user:hash`, a hash of an unknown kind or a
//! password left in clear stops start-up with the line number and the fix.

use ahash::AHashMap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha512};

/// Iterations `ringmq passwd` uses, as `mosquitto_passwd` does by default.
pub const DEFAULT_ITERATIONS: u32 = 101;
const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// One user's stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hash {
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl Hash {
    /// A new PBKDF2-SHA512 hash of `password` with a random salt.
    pub fn new(password: &[u8], iterations: u32) -> Result<Hash, String> {
        let mut salt = vec![0u8; SALT_LEN];
        getrandom::getrandom(&mut salt).map_err(|e| format!("no random salt: {e}"))?;
        let mut hash = vec![0u8; HASH_LEN];
        pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut hash);
        Ok(Hash::Pbkdf2Sha512 {
            iterations,
            salt,
            hash,
        })
    }

    /// Reads the part after `user:`.
    pub fn parse(s: &str) -> Result<Hash, String> {
        let parts: Vec<&str> = s.split('$').collect();
        let b64 = |p: &str| B64.decode(p).map_err(|e| format!("bad base64 ({e})"));
        match parts.as_slice() {
            ["", "7", iterations, salt, hash] => Ok(Hash::Pbkdf2Sha512 {
                iterations: iterations
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad iteration count {iterations:?}"))?,
                salt: b64(salt)?,
                hash: b64(hash)?,
            }),
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: b64(salt)?,
                hash: b64(hash)?,
            }),
            _ if !s.starts_with('$') => {
                Err("the password is not hashed (run `ringmq passwd -U FILE` to hash it)".into())
            }
            _ => Err("unknown hash kind (expected $7$ or $6$, as mosquitto_passwd writes)".into()),
        }
    }

    /// True when `password` is the one hashed (in constant time over the hash bytes).
    pub fn verify(&self, password: &[u8]) -> bool {
        let (computed, stored) = match self {
            Hash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len().max(1)];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                (out, hash)
            }
            Hash::Sha512 { salt, hash } => {
                let mut d = Sha512::new();
                d.update(password);
                d.update(salt);
                (d.finalize().to_vec(), hash)
            }
        };
        computed.len() == stored.len()
            && computed
                .iter()
                .zip(stored)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// The form written to a file.
    pub fn to_line_part(&self) -> String {
        match self {
            Hash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => format!("$7${iterations}${}${}", B64.encode(salt), B64.encode(hash)),
            Hash::Sha512 { salt, hash } => format!("$6${}${}", B64.encode(salt), B64.encode(hash)),
        }
    }
}

/// The users of a password file.
#[derive(Debug, Default)]
pub struct PasswordFile {
    users: AHashMap<String, Hash>,
}

impl PasswordFile {
    pub fn parse(text: &str) -> Result<PasswordFile, String> {
        let mut users = AHashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: expected user:hash", n + 1))?;
            if user.is_empty() {
                return Err(format!("line {}: empty user name", n + 1));
            }
            let hash = Hash::parse(hash).map_err(|e| format!("line {} ({user}): {e}", n + 1))?;
            if users.insert(user.to_owned(), hash).is_some() {
                return Err(format!("line {}: user {user} appears twice", n + 1));
            }
        }
        Ok(PasswordFile { users })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// `None` when the file has no such user; otherwise whether the password is right.
    pub fn verify(&self, user: &str, password: &[u8]) -> Option<bool> {
        self.users.get(user).map(|h| h.verify(password))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_verify() {
        let h = Hash::new(b"s3cret", DEFAULT_ITERATIONS).unwrap();
        let line = h.to_line_part();
        assert!(line.starts_with("$7$101$"), "{line}");
        let back = Hash::parse(&line).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(b"s3cret"));
        assert!(!back.verify(b"s3cret "));
        assert!(!back.verify(b""));
    }

    #[test]
    fn reads_what_mosquitto_passwd_writes() {
        // `mosquitto_passwd -b f alice wonderland` (2.0.11) and a $6$ line of Mosquitto 1.x
        // for bob / builder (SHA-512 of password then salt).
        let salt = b"0123456789ab";
        let mut d = Sha512::new();
        d.update(b"builder");
        d.update(salt);
        let six = format!("$6${}${}", B64.encode(salt), B64.encode(d.finalize()));
        let text = format!(
            "# users\nalice:$7$101$6/BSb8DyvaC7M9cq$ttLktdrpkW5ouyF4UrhR1eg1PN9jTpD99G+Pmqi6Vw7D5R2iTUBz5Qy1rsuQmZYA/chqCtZIStpa7GiUgu7iOw==\n\nbob:{six}\n"
        );
        let f = PasswordFile::parse(&text).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f.verify("alice", b"wonderland"), Some(true));
        assert_eq!(f.verify("alice", b"wonderlanD"), Some(false));
        assert_eq!(f.verify("bob", b"builder"), Some(true));
        assert_eq!(f.verify("bob", b"Builder"), Some(false));
        assert_eq!(f.verify("carol", b"x"), None);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_fix() {
        let e = PasswordFile::parse("a:$7$101$c2FsdA==$aGFzaA==\nb:plain\n").unwrap_err();
        assert!(
            e.starts_with("line 2 (b)") && e.contains("ringmq passwd -U"),
            "{e}"
        );
        let e = PasswordFile::parse("nocolon\n").unwrap_err();
        assert!(e.contains("line 1: expected user:hash"), "{e}");
        let e = PasswordFile::parse("a:$9$x$y\n").unwrap_err();
        assert!(e.contains("unknown hash kind"), "{e}");
        let e = PasswordFile::parse("a:$7$0$c2FsdA==$aGFzaA==\n").unwrap_err();
        assert!(e.contains("iteration"), "{e}");
        let e =
            PasswordFile::parse("a:$6$c2FsdA==$aGFzaA==\na:$6$c2FsdA==$aGFzaA==\n").unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }
}
