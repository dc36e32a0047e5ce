//! The chain authority's ed25519 key pair: the secret that seals blocks, its public half that
//! every process verifies against, and the key file format.
//!
//! The key file holds the 32-byte secret as 64 lowercase hex characters and a newline, created
//! with mode 0600 and never overwritten. This module never logs or displays a secret: `Debug`
//! of an [`AuthorityKey`] shows only its public key.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use poa_ports::Signature;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::KeyError;

/// The phrase whose SHA-256 hash is the secret of [`AuthorityKey::dev`]. Public by design: the
/// dev key is for local development and tests, never for a chain that matters.
pub const DEV_KEY_SEED_PHRASE: &str = "poa-dev-authority-key";

/// Length of the hex-encoded secret in a key file.
const SECRET_HEX_LEN: usize = 64;

/// Permissions of a key file: readable and writable by its owner only.
const KEY_FILE_MODE: u32 = 0o600;

/// The authority's signing key. Seals blocks; see [`crate::Ed25519BlockSigner`].
pub struct AuthorityKey {
    signing: SigningKey,
}

impl AuthorityKey {
    /// The deterministic development key: its secret is SHA-256 of [`DEV_KEY_SEED_PHRASE`], so
    /// every process of a dev fleet shares it without a key file.
    pub fn dev() -> Self {
        Self::from_secret_bytes(Sha256::digest(DEV_KEY_SEED_PHRASE).into())
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The key with the given 32-byte secret.
    pub fn from_secret_bytes(secret: [u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// Reads a key file written by [`AuthorityKey::write_to_file`]. A file readable by group or
    /// others is accepted with a warning, so a fleet does not stop over a permission slip.
    ///
    /// # Errors
    ///
    /// [`KeyError::Missing`], [`KeyError::NotARegularFile`], [`KeyError::Unreadable`] or
    /// [`KeyError::Malformed`], each naming the path.
    pub fn read_from_file(path: &Path) -> Result<Self, KeyError> {
        // Opening a FIFO for reading blocks until a writer appears: refuse anything but a
        // regular file before opening it, so a wrong path never hangs startup.
        if let Ok(metadata) = std::fs::metadata(path)
            && !metadata.is_file()
        {
            return Err(KeyError::NotARegularFile {
                path: path.to_path_buf(),
                kind: file_kind(&metadata.file_type()),
            });
        }
        let content = std::fs::read_to_string(path).map_err(|source| match source.kind() {
            ErrorKind::NotFound => KeyError::Missing {
                path: path.to_path_buf(),
            },
            _ => KeyError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let secret = parse_secret(&content).map_err(|reason| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        })?;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "authority key file is readable by other users"
            );
        }
        Ok(Self::from_secret_bytes(secret))
    }

    /// Writes the secret to a new file with mode 0600 and syncs it to disk. A partially written
    /// file is removed, so a later read never finds half a key.
    ///
    /// # Errors
    ///
    /// [`KeyError::AlreadyExists`] when any file exists at `path` (it is left untouched);
    /// [`KeyError::Unwritable`] when the file cannot be created or written.
    pub fn write_to_file(&self, path: &Path) -> Result<(), KeyError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(KEY_FILE_MODE)
            .open(path)
            .map_err(|source| match source.kind() {
                ErrorKind::AlreadyExists => KeyError::AlreadyExists {
                    path: path.to_path_buf(),
                },
                _ => KeyError::Unwritable {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        let content = format!("{}\n", hex::encode(self.signing.to_bytes()));
        let written = file
            .write_all(content.as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(source) = written {
            drop(file);
            // The write already failed; a failed cleanup adds nothing the caller can act on.
            let _ = std::fs::remove_file(path);
            return Err(KeyError::Unwritable {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(())
    }

    /// The public half, which a [`crate::ChainSpec`] names as the chain's authority.
    pub fn public_key(&self) -> AuthorityPublicKey {
        AuthorityPublicKey(self.signing.verifying_key())
    }

    /// Signs a message (a block id) with the secret.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        Signature::from_bytes(self.signing.sign(message).to_bytes())
    }
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// What a non-regular file is, for an operator.
fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Parses key file content: 64 hex characters, then one newline (also accepted without it).
fn parse_secret(content: &str) -> Result<[u8; 32], String> {
    let hex_part = content.strip_suffix('\n').unwrap_or(content);
    if hex_part.len() != SECRET_HEX_LEN {
        return Err(format!(
            "found {} characters before the newline",
            hex_part.len()
        ));
    }
    let mut secret = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut secret).map_err(|error| format!("not hex: {error}"))?;
    Ok(secret)
}

/// The authority's ed25519 public key (32 bytes, compressed), shown and parsed as 64 hex
/// characters. Always a valid curve point: construction checks it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorityPublicKey(VerifyingKey);

impl AuthorityPublicKey {
    /// The key with the given compressed bytes.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPublicKey`] when the bytes are not a valid ed25519 point.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| KeyError::InvalidPublicKey {
                reason: "not a valid ed25519 point",
            })
    }

    /// The compressed bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Whether `signature` is this key's signature of `message`. Strict verification: it
    /// refuses malleable signatures and weak keys, so one block has one valid seal encoding.
    pub(crate) fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature.as_bytes());
        self.0.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for AuthorityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityPublicKey({self})")
    }
}

impl FromStr for AuthorityPublicKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| KeyError::InvalidPublicKey {
            reason: "expected 64 hex characters",
        })?;
        Self::from_bytes(&bytes)
    }
}

// Configuration files carry the key as its hex string, the same text operators see in logs.
impl Serialize for AuthorityPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AuthorityPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn dev__when_called_twice__then_yields_the_same_public_key() {
        // given / when
        let first = AuthorityKey::dev();
        let second = AuthorityKey::dev();

        // then
        assert_eq!(first.public_key(), second.public_key());
        assert_eq!(
            first.signing.to_bytes(),
            <[u8; 32]>::from(Sha256::digest(DEV_KEY_SEED_PHRASE))
        );
    }

    #[test]
    fn generate__when_called_twice__then_yields_different_keys() {
        assert_ne!(
            AuthorityKey::generate().public_key(),
            AuthorityKey::generate().public_key()
        );
    }

    #[test]
    fn write_to_file__when_read_back__then_yields_the_same_key_with_mode_0600() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authority.key");
        let key = AuthorityKey::generate();

        // when
        key.write_to_file(&path).unwrap();

        // then
        let read = AuthorityKey::read_from_file(&path).unwrap();
        assert_eq!(read.public_key(), key.public_key());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let content = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            content,
            format!("{}\n", hex::encode(key.signing.to_bytes()))
        );
    }

    #[test]
    fn write_to_file__when_file_exists__then_refuses_and_leaves_it_untouched() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("authority.key");
        std::fs::write(&path, "precious\n").unwrap();

        // when
        let result = AuthorityKey::generate().write_to_file(&path);

        // then
        assert!(matches!(result, Err(KeyError::AlreadyExists { .. })));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious\n");
    }

    #[test]
    fn read_from_file__when_missing__then_error_names_the_path() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.key");

        // when
        let error = AuthorityKey::read_from_file(&path).unwrap_err();

        // then
        assert!(matches!(error, KeyError::Missing { .. }));
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn read_from_file__when_path_is_a_directory__then_refuses_naming_what_it_is() {
        // given
        let dir = tempfile::tempdir().unwrap();

        // when
        let error = AuthorityKey::read_from_file(dir.path()).unwrap_err();

        // then
        assert!(matches!(error, KeyError::NotARegularFile { .. }));
        let message = error.to_string();
        assert!(message.contains(&dir.path().display().to_string()));
        assert!(message.contains("a directory"), "{message}");
    }

    #[test]
    fn read_from_file__when_content_is_malformed__then_error_names_the_path() {
        let cases = [
            ("empty", String::new()),
            ("short", format!("{}\n", "ab".repeat(31))),
            ("long", format!("{}\n", "ab".repeat(33))),
            ("not hex", format!("{}\n", "zz".repeat(32))),
            ("two newlines", format!("{}\n\n", "ab".repeat(32))),
        ];
        for (name, content) in cases {
            // given
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("authority.key");
            std::fs::write(&path, content).unwrap();

            // when
            let error = AuthorityKey::read_from_file(&path).unwrap_err();

            // then
            assert!(matches!(error, KeyError::Malformed { .. }), "{name}");
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{name}"
            );
        }
    }

    #[test]
    fn public_key__when_formatted_as_hex__then_parses_back() {
        // given
        let key = AuthorityKey::dev().public_key();

        // when
        let text = key.to_string();

        // then
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<AuthorityPublicKey>().unwrap(), key);
    }

    #[test]
    fn public_key__when_text_is_not_a_key__then_refuses() {
        assert!("abcd".parse::<AuthorityPublicKey>().is_err());
        assert!("zz".repeat(32).parse::<AuthorityPublicKey>().is_err());
    }

    #[test]
    fn debug__when_formatting_a_key__then_shows_no_secret() {
        // given
        let key = AuthorityKey::dev();

        // when
        let shown = format!("{key:?}");

        // then
        assert!(!shown.contains(&hex::encode(key.signing.to_bytes())));
        assert!(shown.contains(&key.public_key().to_string()));
    }
}
