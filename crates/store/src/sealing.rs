//! Secrets the runner must be able to read back (the accounts' webhook signing secrets: callbacks are
//! signed with them, and the account may view them) are stored sealed, never in plain text: encrypted
//! with XChaCha20-Poly1305 under the operator's key, bound to the row they belong to.
//!
//! A sealed value is text: `sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id
//! (a hash of the key, not the key) says which key sealed it, so keys can rotate: the [`Keyring`] holds
//! the current key, which seals, and previous keys, which only open; at start-up the services re-seal
//! every value that is not under the current key (see `callbacks::seal_stored_secrets`).
//!
//! Keys come from the environment ([`Keyring::from_env`]); there is no fallback to plain text.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why a key could not be loaded or a value could not be opened. Never carries key or secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Config(String),
    #[error(
        "a secret is sealed with key {0}, which is neither PHLO_SECRET_KEY nor one of PHLO_SECRET_KEY_PREVIOUS: \
         start the service with the key that sealed it"
    )]
    UnknownKey(String),
    #[error("a sealed secret does not open: it was altered, or belongs to another row")]
    Corrupt,
}

/// One 256-bit key and its id.
#[derive(Clone)]
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8; KEY_LEN]) -> Key {
        let digest = Sha256::new()
            .chain_update(b"phlo secret key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Key {
            id,
            cipher: XChaCha20Poly1305::new(&(*bytes).into()),
        }
    }
}

/// The current key (seals and opens) and the previous ones (open only, during a rotation).
#[derive(Clone)]
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// A keyring of one key.
    pub fn new(key: &[u8; KEY_LEN]) -> Keyring {
        Keyring {
            current: Key::new(key),
            previous: Vec::new(),
        }
    }

    /// Adds a key that still opens what it sealed.
    pub fn with_previous(mut self, key: &[u8; KEY_LEN]) -> Keyring {
        let key = Key::new(key);
        if key.id != self.current.id && !self.previous.iter().any(|k| k.id == key.id) {
            self.previous.push(key);
        }
        self
    }

    /// The keyring the operator configured:
    ///
    /// - `PHLO_SECRET_KEY`: the current key, base64 of 32 random bytes (`openssl rand -base64 32`);
    /// - `PHLO_SECRET_KEY_PREVIOUS`: comma-separated keys that sealed values may still be under (during
    ///   a rotation; the services re-seal those values under the current key at start-up);
    /// - `PHLO_SECRET_KEY_FILE`: when `PHLO_SECRET_KEY` is unset, a file holding the key; created with a
    ///   fresh key if it does not exist (for local development, or a key mounted as a file).
    ///
    /// Neither set is an error: secrets are never stored in plain text.
    pub fn from_env() -> Result<Keyring, SealError> {
        Self::from_settings(|name| std::env::var(name).ok())
    }

    /// [`Keyring::from_env`] with the settings read by `lookup` (the environment with a command's
    /// defaults, `phlo_service::var`).
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Keyring, SealError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let current = match (var("PHLO_SECRET_KEY"), var("PHLO_SECRET_KEY_FILE")) {
            (Some(key), _) => parse_key("PHLO_SECRET_KEY", &key)?,
            (None, Some(path)) => key_file(Path::new(path.trim()))?,
            (None, None) => {
                return Err(SealError::Config(
                    "PHLO_SECRET_KEY is not set: webhook signing secrets are stored encrypted with it. Set it \
                     to base64 of 32 random bytes (`openssl rand -base64 32`), the same on every gateway and \
                     callback service, or for local development set PHLO_SECRET_KEY_FILE to a path where a \
                     key is kept (created if missing)"
                        .to_owned(),
                ));
            }
        };
        let mut ring = Keyring::new(&current);
        if let Some(previous) = var("PHLO_SECRET_KEY_PREVIOUS") {
            for (i, key) in previous.split(',').enumerate() {
                let key = parse_key(&format!("PHLO_SECRET_KEY_PREVIOUS (key {})", i + 1), key)?;
                ring = ring.with_previous(&key);
            }
        }
        Ok(ring)
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// `plaintext` sealed under the current key. `context` names the row (e.g. the account id): the
    /// value opens only with the same context, so a sealed value copied to another row is useless.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = self
            .current
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Encryption only fails for messages of gigabytes.
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Opens a value [`Keyring::seal`] produced, with the key whose id it names.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let rest = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Corrupt)?;
        let (id, data) = rest.split_once(':').ok_or(SealError::Corrupt)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| SealError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Corrupt);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SealError::Corrupt)?;
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SealError::Corrupt)
    }

    /// Whether `stored` is sealed under the current key (nothing to re-seal).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }
}

/// A fresh key, as `PHLO_SECRET_KEY` takes it.
pub fn new_key() -> String {
    STANDARD.encode(rand::random::<[u8; KEY_LEN]>())
}

fn parse_key(name: &str, value: &str) -> Result<[u8; KEY_LEN], SealError> {
    let value = value.trim();
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok());
    // The message never includes the value: it is a secret even when malformed.
    match decoded {
        Some(bytes) => <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
            SealError::Config(format!(
                "{name} must be base64 of exactly 32 bytes (`openssl rand -base64 32`); it decodes to {} bytes",
                bytes.len()
            ))
        }),
        None => Err(SealError::Config(format!(
            "{name} is not base64; it must be base64 of 32 random bytes (`openssl rand -base64 32`)"
        ))),
    }
}

/// Reads the key in `path`, or creates the file with a fresh key (readable by its owner only). Two
/// processes starting together agree: only one creation succeeds, the other reads its key.
fn key_file(path: &Path) -> Result<[u8; KEY_LEN], SealError> {
    let name = format!("PHLO_SECRET_KEY_FILE ({})", path.display());
    let fail = |what: &str, e: std::io::Error| {
        SealError::Config(format!(
            "{name}: cannot {what}: {e}; set PHLO_SECRET_KEY instead"
        ))
    };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return parse_key(&name, &text),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("read it", e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail("create its directory", e))?;
    }
    let fresh = new_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(path).and_then(|mut file| {
        use std::io::Write;
        file.write_all(format!("{fresh}\n").as_bytes())
    });
    match written {
        Ok(()) => parse_key(&name, &fresh),
        // Another process created it first (or an empty file was there): use what it holds.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for _ in 0..50 {
                let text = std::fs::read_to_string(path).map_err(|e| fail("read it", e))?;
                if !text.trim().is_empty() {
                    return parse_key(&name, &text);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(SealError::Config(format!(
                "{name} is empty: delete it to have a key generated, or write one into it"
            )))
        }
        Err(e) => Err(fail("create it", e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn seals_and_opens_only_in_its_context_and_never_shows_the_plaintext() {
        let ring = Keyring::new(&[7; 32]);
        let sealed = ring.seal("whsec_abc", "account-1");
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", ring.current_id())));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            ring.seal("whsec_abc", "account-1"),
            "a fresh nonce each time"
        );
        assert_eq!(ring.open(&sealed, "account-1").unwrap(), "whsec_abc");
        assert_eq!(ring.open(&sealed, "account-2"), Err(SealError::Corrupt));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(ring.open(&altered, "account-1"), Err(SealError::Corrupt));
        assert_eq!(ring.open("whsec_abc", "account-1"), Err(SealError::Corrupt));
        assert!(!format!("{ring:?}").contains("7, 7"));
    }

    #[test]
    fn a_rotated_keyring_opens_old_values_and_seals_with_the_new_key() {
        let old = Keyring::new(&[1; 32]);
        let sealed = old.seal("s", "a");
        let new = Keyring::new(&[2; 32]).with_previous(&[1; 32]);
        assert_ne!(new.current_id(), old.current_id());
        assert!(!new.is_current(&sealed) && old.is_current(&sealed));
        assert_eq!(new.open(&sealed, "a").unwrap(), "s");
        assert!(new.is_current(&new.seal("s", "a")));
        let without = Keyring::new(&[2; 32]);
        assert_eq!(
            without.open(&sealed, "a"),
            Err(SealError::UnknownKey(old.current_id().to_owned()))
        );
    }

    #[test]
    fn keys_must_be_base64_of_32_bytes_and_errors_do_not_echo_them() {
        assert_eq!(parse_key("K", &new_key()).unwrap().len(), 32);
        let url_safe = URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert_eq!(parse_key("K", &url_safe).unwrap(), [0xfb; 32]);
        let short = STANDARD.encode([1; 16]);
        let e = parse_key("K", &short).unwrap_err().to_string();
        assert!(e.contains("16 bytes") && !e.contains(&short), "{e}");
        let e = parse_key("K", "not a key!").unwrap_err().to_string();
        assert!(e.contains("not base64") && !e.contains("not a key!"), "{e}");
    }

    #[test]
    fn a_key_file_is_created_once_and_then_read() {
        let dir = std::env::temp_dir().join(format!("phlo-key-{}", rand::random::<u64>()));
        let path = dir.join("nested").join("secret-key");
        let first = key_file(&path).unwrap();
        assert_eq!(key_file(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(key_file(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
