//! The chain authority's ed25519 key pair: the secret that seals blocks, its public half that
//! every process verifies against, and the key file format.
//!
//! The key file holds the 32-byte secret as 64 lowercase hex characters and a newline, created
//! with mode 0600 and never overwritten; a key file that group or others may read or write is
//! refused, as ssh refuses such a private key. The secret lives only in buffers that wipe
//! themselves when dropped (`Zeroizing`, and ed25519-dalek's `SigningKey` with its `zeroize`
//! feature). This module never logs or displays a secret: `Debug` of an [`AuthorityKey`] shows
//! only its public key, and no error quotes a key file's content.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use poa_ports::Signature;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::error::KeyError;

/// The phrase whose SHA-256 hash is the secret of [`AuthorityKey::dev`]. Public by design: the
/// dev key is for local development and tests, never for a chain that matters.
pub const DEV_KEY_SEED_PHRASE: &str = "poa-dev-authority-key";

/// Length of the hex-encoded secret in a key file.
const SECRET_HEX_LEN: usize = 64;

/// The most bytes read from a key file: the hex secret, its newline, and one more byte to tell
/// a longer file. The read buffer is allocated at this size once, so it never reallocates and
/// leaves no unwiped copy of the secret behind.
const KEY_FILE_READ_LIMIT: usize = SECRET_HEX_LEN + 2;

/// Permissions of a key file: readable and writable by its owner only.
const KEY_FILE_MODE: u32 = 0o600;

/// The permission bits of group and others, none of which a key file may have.
const GROUP_AND_OTHER_BITS: u32 = 0o077;

/// Lowercase hex digits, for writing the secret without an intermediate string.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The authority's signing key. Seals blocks; see [`crate::Ed25519BlockSigner`]. Its secret is
/// wiped from memory when the key is dropped.
pub struct AuthorityKey {
    signing: SigningKey,
}

// True because the only field wipes itself: ed25519-dalek's `SigningKey` zeroizes its secret on
// drop with the `zeroize` feature, which the workspace manifest turns on (a unit test checks it).
impl ZeroizeOnDrop for AuthorityKey {}

impl AuthorityKey {
    /// The deterministic development key: its secret is SHA-256 of [`DEV_KEY_SEED_PHRASE`], so
    /// every process of a dev fleet shares it without a key file.
    pub fn dev() -> Self {
        Self::from_secret_bytes(&Sha256::digest(DEV_KEY_SEED_PHRASE).into())
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The key with the given 32-byte secret. The caller keeps its buffer, and wipes it.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// Reads a key file written by [`AuthorityKey::write_to_file`]. The file must be a regular
    /// file that neither group nor others may read or write (mode 0600 or 0400).
    ///
    /// # Errors
    ///
    /// [`KeyError::Missing`], [`KeyError::NotARegularFile`], [`KeyError::OpenPermissions`],
    /// [`KeyError::Unreadable`] or [`KeyError::Malformed`], each naming the path.
    pub fn read_from_file(path: &Path) -> Result<Self, KeyError> {
        let unreadable = |source: std::io::Error| match source.kind() {
            ErrorKind::NotFound => KeyError::Missing {
                path: path.to_path_buf(),
            },
            _ => KeyError::Unreadable {
                path: path.to_path_buf(),
                source,
            },
        };
        // Opening a FIFO for reading blocks until a writer appears: refuse anything but a
        // regular file before opening it, so a wrong path never hangs startup.
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(KeyError::NotARegularFile {
                path: path.to_path_buf(),
                kind: file_kind(&metadata.file_type()),
            });
        }
        let file = File::open(path).map_err(unreadable)?;
        // The permissions of the file opened, not of whatever the path named a moment ago.
        let mode = file.metadata().map_err(unreadable)?.permissions().mode();
        if mode & GROUP_AND_OTHER_BITS != 0 {
            return Err(KeyError::OpenPermissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let mut content = Zeroizing::new(Vec::with_capacity(KEY_FILE_READ_LIMIT));
        file.take(KEY_FILE_READ_LIMIT as u64)
            .read_to_end(&mut content)
            .map_err(unreadable)?;
        let secret = parse_secret(&content).map_err(|reason| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(Self::from_secret_bytes(&secret))
    }

    /// Writes the secret to a new file created with mode 0600 (never widened by the umask, and
    /// never readable by others even for a moment) and syncs it to disk. A partially written
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
        let mut content = Zeroizing::new([b'\n'; SECRET_HEX_LEN + 1]);
        for (digits, byte) in content.chunks_exact_mut(2).zip(self.signing.as_bytes()) {
            digits[0] = HEX_DIGITS[usize::from(byte >> 4)];
            digits[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
        }
        let written = file.write_all(&*content).and_then(|()| file.sync_all());
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

/// Parses key file content (at most [`KEY_FILE_READ_LIMIT`] bytes): 64 hex characters, then one
/// newline (also accepted without it). The reason of a refusal never quotes the content: it is
/// logged, and a typo'd key file is still mostly a secret.
fn parse_secret(content: &[u8]) -> Result<Zeroizing<[u8; 32]>, String> {
    let hex_part = content.strip_suffix(b"\n").unwrap_or(content);
    if hex_part.len() > SECRET_HEX_LEN {
        return Err(format!(
            "found more than {SECRET_HEX_LEN} characters before the newline"
        ));
    }
    if hex_part.len() < SECRET_HEX_LEN {
        return Err(format!(
            "found {} characters before the newline",
            hex_part.len()
        ));
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(hex_part, &mut *secret).map_err(|error| match error {
        hex::FromHexError::InvalidHexCharacter { index, .. } => {
            format!("character {} is not a hex digit", index + 1)
        }
        other => format!("not hex: {other}"),
    })?;
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
            ("much too long", "ab".repeat(4096)),
            ("not hex", format!("{}\n", "zz".repeat(32))),
            ("two newlines", format!("{}\n\n", "ab".repeat(32))),
        ];
        for (name, content) in cases {
            // given
            let dir = tempfile::tempdir().unwrap();
            let path = owner_only_file(dir.path(), &content);

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
    fn read_from_file__when_a_character_is_not_hex__then_the_error_does_not_quote_it() {
        // given
        let dir = tempfile::tempdir().unwrap();
        let mut content = "ab".repeat(32);
        content.replace_range(10..11, "Q");
        let path = owner_only_file(dir.path(), &format!("{content}\n"));

        // when
        let message = AuthorityKey::read_from_file(&path).unwrap_err().to_string();

        // then
        assert!(
            message.contains("character 11 is not a hex digit"),
            "{message}"
        );
        assert!(!message.contains("'Q'"), "{message}");
        assert!(!message.contains("abab"), "{message}");
    }

    #[test]
    fn read_from_file__when_group_or_others_may_read_or_write__then_refuses_naming_mode_and_fix() {
        for mode in [0o640, 0o620, 0o604, 0o602, 0o644, 0o660, 0o666, 0o610] {
            // given
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("authority.key");
            AuthorityKey::generate().write_to_file(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();

            // when
            let error = AuthorityKey::read_from_file(&path).unwrap_err();

            // then
            assert!(
                matches!(error, KeyError::OpenPermissions { mode: found, .. } if found == mode),
                "{mode:o}: {error:?}"
            );
            let message = error.to_string();
            assert!(message.contains(&format!("mode {mode:04o}")), "{message}");
            assert!(
                message.contains(&format!("`chmod 600 {}`", path.display())),
                "{message}"
            );
        }
    }

    #[test]
    fn read_from_file__when_only_the_owner_may_read__then_accepts() {
        for mode in [0o600, 0o400] {
            // given
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("authority.key");
            let key = AuthorityKey::generate();
            key.write_to_file(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();

            // when
            let read = AuthorityKey::read_from_file(&path);

            // then
            assert_eq!(read.unwrap().public_key(), key.public_key(), "{mode:o}");
        }
    }

    /// Whether a dropped key's memory was wiped cannot be observed from safe code: reading it
    /// back means reading freed memory (undefined behaviour, and `unsafe` is forbidden in this
    /// workspace). What this checks instead is that every type holding the secret wipes itself
    /// on drop: ed25519-dalek's `SigningKey` does only with its `zeroize` feature, so a build
    /// without that feature fails here, and [`AuthorityKey`] and the buffers a key file is read
    /// into are such types. The buffers' wiping is then observed on a live value.
    #[test]
    fn authority_key__when_dropped__then_its_secret_is_wiped() {
        // given
        fn wipes_on_drop<T: ZeroizeOnDrop>() {}
        wipes_on_drop::<SigningKey>();
        wipes_on_drop::<AuthorityKey>();
        wipes_on_drop::<Zeroizing<Vec<u8>>>();
        wipes_on_drop::<Zeroizing<[u8; 32]>>();
        let dir = tempfile::tempdir().unwrap();
        let key = AuthorityKey::generate();
        let path = dir.path().join("authority.key");
        key.write_to_file(&path).unwrap();
        let content = std::fs::read(&path).unwrap();
        let mut secret = parse_secret(&content).unwrap();
        assert_eq!(&*secret, key.signing.as_bytes());

        // when: what `Zeroizing` runs on drop
        zeroize::Zeroize::zeroize(&mut *secret);

        // then
        assert_eq!(*secret, [0u8; 32]);
    }

    /// A file with `content`, readable and writable by its owner only, as a key file must be.
    fn owner_only_file(dir: &Path, content: &str) -> std::path::PathBuf {
        let path = dir.join("authority.key");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        file.write_all(content.as_bytes()).unwrap();
        path
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
