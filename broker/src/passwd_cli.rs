//! `ringmq passwd`: adds, changes and deletes users of a password file, with
//! `mosquitto_passwd`'s options, so the same commands work on the same files. Lines of other
//! users, comments and blank lines are left exactly as they were; the file is replaced in one
//! rename, and a new one is created readable by its owner only.

use crate::passwd::{Hash, DEFAULT_ITERATIONS};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `ringmq passwd [-c | -D] FILE USER`, `ringmq passwd -b FILE USER PASSWORD`,
/// `ringmq passwd -U FILE`.
#[derive(Args, Debug, Clone)]
pub struct PasswdArgs {
    /// Create the file (an existing one is overwritten).
    #[arg(short = 'c', conflicts_with_all = ["delete", "update"])]
    pub create: bool,
    /// Delete USER from the file.
    #[arg(short = 'D', conflicts_with_all = ["batch", "update"])]
    pub delete: bool,
    /// Batch mode: the password is the third argument (it shows in the process list and
    /// the shell history; without -b it is asked for twice on the terminal).
    #[arg(short = 'b')]
    pub batch: bool,
    /// Hash every password of FILE that is still in clear text; hashed lines stay as they are.
    #[arg(short = 'U', conflicts_with_all = ["batch", "create"])]
    pub update: bool,
    /// PBKDF2 iterations of new hashes.
    #[arg(short = 'I', value_name = "ITERATIONS", default_value_t = DEFAULT_ITERATIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    /// The password file.
    pub file: PathBuf,
    pub user: Option<String>,
    pub password: Option<String>,
}

pub fn run(a: &PasswdArgs) -> ExitCode {
    match edit(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringmq passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn edit(a: &PasswdArgs) -> Result<(), String> {
    let old = if a.create {
        String::new()
    } else {
        std::fs::read_to_string(&a.file)
            .map_err(|e| format!("cannot read {}: {e} (-c creates it)", a.file.display()))?
    };
    let lines: Vec<String> = if a.update {
        if a.user.is_some() {
            return Err("-U takes only the file".into());
        }
        hash_clear_lines(&old, a.iterations)?
    } else {
        let user = a
            .user
            .as_deref()
            .ok_or("a user name is needed: ringmq passwd [-c | -D] FILE USER")?;
        if user.is_empty() || user.contains(':') {
            return Err(format!(
                "user name {user:?}: must be non-empty, without ':'"
            ));
        }
        if a.delete {
            let kept = without_user(&old, user);
            if kept.len() == old.lines().count() {
                return Err(format!("user {user} is not in {}", a.file.display()));
            }
            kept
        } else {
            let password = match (&a.password, a.batch) {
                (Some(p), true) => p.clone(),
                (None, true) => return Err("-b needs the password as third argument".into()),
                (Some(_), false) => return Err("a password argument needs -b".into()),
                (None, false) => ask()?,
            };
            with_user(&old, user, &Hash::new(password.as_bytes(), a.iterations)?)
        }
    };
    write_atomically(&a.file, &lines)
}

/// Asks for the password twice on the terminal, without echo.
fn ask() -> Result<String, String> {
    let p = rpassword::prompt_password("Password: ").map_err(|e| format!("reading: {e}"))?;
    let again =
        rpassword::prompt_password("Reenter password: ").map_err(|e| format!("reading: {e}"))?;
    if p != again {
        return Err("the passwords do not match".into());
    }
    Ok(p)
}

fn user_of(line: &str) -> Option<&str> {
    if line.starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(u, _)| u)
}

/// `old` with `user`'s line set to `hash` (in its place, or added at the end).
fn with_user(old: &str, user: &str, hash: &Hash) -> Vec<String> {
    let new = format!("{user}:{}", hash.to_line_part());
    let mut found = false;
    let mut out: Vec<String> = old
        .lines()
        .map(|l| {
            if user_of(l) == Some(user) && !found {
                found = true;
                new.clone()
            } else {
                l.to_owned()
            }
        })
        .collect();
    if !found {
        out.push(new);
    }
    out
}

fn without_user(old: &str, user: &str) -> Vec<String> {
    old.lines()
        .filter(|l| user_of(l) != Some(user))
        .map(str::to_owned)
        .collect()
}

/// Every `user:password` line whose password is not a hash, hashed.
fn hash_clear_lines(old: &str, iterations: u32) -> Result<Vec<String>, String> {
    old.lines()
        .map(|l| match l.split_once(':') {
            Some((u, p)) if !l.starts_with('#') && !p.starts_with('$') => Ok(format!(
                "{u}:{}",
                Hash::new(p.as_bytes(), iterations)?.to_line_part()
            )),
            _ => Ok(l.to_owned()),
        })
        .collect()
}

fn write_atomically(path: &Path, lines: &[String]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("ringmq-tmp");
    let mode = std::fs::metadata(path)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
        .unwrap_or(0o600);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passwd::PasswordFile;

    #[test]
    fn edits_touch_only_the_user_named() {
        let old = "# ops\nann:$6$c2FsdA==$aGFzaA==\n\nbob:$6$c2FsdA==$aGFzaA==\n";
        let h = Hash::new(b"new", 5).unwrap();
        let out = with_user(old, "bob", &h).join("\n");
        assert!(
            out.starts_with("# ops\nann:$6$c2FsdA==$aGFzaA==\n\nbob:$7$5$"),
            "{out}"
        );
        let f = PasswordFile::parse(&out).unwrap();
        assert_eq!(f.verify("bob", b"new"), Some(true));
        let out = with_user(old, "cy", &h);
        assert_eq!(out.len(), 5, "added at the end");
        let out = without_user(old, "ann").join("\n");
        assert_eq!(out, "# ops\n\nbob:$6$c2FsdA==$aGFzaA==");
    }

    #[test]
    fn update_hashes_clear_passwords_and_leaves_hashes() {
        let old = "ann:$6$c2FsdA==$aGFzaA==\nbob:builder\n# cy:x\n";
        let out = hash_clear_lines(old, 3).unwrap();
        assert_eq!(out[0], "ann:$6$c2FsdA==$aGFzaA==");
        assert!(out[1].starts_with("bob:$7$3$"));
        assert_eq!(out[2], "# cy:x");
        let f = PasswordFile::parse(&out.join("\n")).unwrap();
        assert_eq!(f.verify("bob", b"builder"), Some(true));
    }
}
