//! argon2id: hashing and verifying passwords off the async executor, at most one
//! operation per core at a time, plus validation of hashes that arrive from outside.
//!
//! Architecture invariant: this is the only module that calls argon2, and every call
//! from a request goes through [`PasswordHasher`]: the request holds a [`Slot`] of the
//! bounded, fair pool ([`admission`]) and the work runs on a blocking thread.

pub mod admission;

use admission::Admission;
pub use admission::Slot;

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

use crate::domain::{Password, ServiceError};

/// argon2id cost parameters. The default is OWASP's first recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Bounds on the parameters of a stored hash. Anything outside is refused at import
/// and never verified: a hash with 4 GiB of memory would be a denial of service.
pub const M_COST_RANGE: std::ops::RangeInclusive<u32> = 7_168..=262_144;
pub const T_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
pub const P_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=16;

/// Why a hash string from a provisioning file or the database is not acceptable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashFormatError {
    #[error("not a PHC string")]
    NotPhc,
    #[error("algorithm must be argon2id")]
    NotArgon2id,
    #[error("argon2 version must be 19")]
    WrongVersion,
    #[error("parameter {0} is outside {1:?}")]
    OutOfBounds(&'static str, std::ops::RangeInclusive<u32>),
    #[error("salt or hash missing or malformed")]
    Malformed,
}

/// Checks that `phc` is an argon2id v19 PHC string with parameters inside the bounds.
pub fn validate_hash(phc: &str) -> Result<HashParams, HashFormatError> {
    let hash = PasswordHash::new(phc).map_err(|_| HashFormatError::NotPhc)?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(HashFormatError::NotArgon2id);
    }
    if hash.version != Some(Version::V0x13 as u32) {
        return Err(HashFormatError::WrongVersion);
    }
    let params = Params::try_from(&hash).map_err(|_| HashFormatError::Malformed)?;
    let found = HashParams {
        m_cost: params.m_cost(),
        t_cost: params.t_cost(),
        p_cost: params.p_cost(),
    };
    for (name, value, range) in [
        ("m", found.m_cost, M_COST_RANGE),
        ("t", found.t_cost, T_COST_RANGE),
        ("p", found.p_cost, P_COST_RANGE),
    ] {
        if !range.contains(&value) {
            return Err(HashFormatError::OutOfBounds(name, range));
        }
    }
    match (&hash.salt, &hash.hash) {
        (Some(salt), Some(out)) if salt.len() >= 11 && out.len() >= 16 => Ok(found),
        _ => Err(HashFormatError::Malformed),
    }
}

fn argon2(params: HashParams) -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(params.m_cost, params.t_cost, params.p_cost, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes on the current thread. For import (on its own threads) and the pool below.
pub fn hash_blocking(params: HashParams, password: &Password) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon2 = argon2(params).map_err(|e| e.to_string())?;
    argon2
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies on the current thread; a malformed or out-of-bounds hash never matches.
pub fn verify_blocking(phc: &str, password: &Password) -> bool {
    if validate_hash(phc).is_err() {
        return false;
    }
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default()
            .verify_password(password.expose().as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// The result of checking a caller's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash is weaker than the configured parameters and should be replaced.
    pub needs_upgrade: bool,
}

/// The bounded, fair argon2 pool the service uses. A request first takes a [`Slot`]
/// with [`PasswordHasher::admit`], then runs all of its argon2 work under it.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    admission: Arc<Admission>,
    /// A hash of a random password with the configured parameters, verified against
    /// when the account or e-mail is unknown so that every failure takes the same time.
    dummy_hash: Arc<str>,
}

impl PasswordHasher {
    /// `slots` requests may hash at once; `max_queue` more may wait, each at most `max_wait`.
    pub fn new(
        params: HashParams,
        slots: usize,
        max_queue: usize,
        max_wait: Duration,
    ) -> Result<Self, String> {
        let mut random = [0u8; 24];
        rand::Rng::fill(&mut OsRng, &mut random);
        let dummy = Password::normalise(
            &random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
        let dummy_hash = hash_blocking(params, &dummy)?;
        Ok(PasswordHasher {
            params,
            admission: Admission::new(slots, max_queue, max_wait),
            dummy_hash: dummy_hash.into(),
        })
    }

    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Takes a hashing slot for a request from `client` (its address), or answers
    /// `ServerBusy` when the queue is full or the wait bound passes.
    pub async fn admit(&self, client: &str) -> Result<Slot, ServiceError> {
        self.admission.acquire(client).await.map_err(|refusal| {
            log::debug!("hashing slot refused: {refusal:?}");
            ServiceError::ServerBusy
        })
    }

    /// Runs `work` on a blocking thread; the caller's slot bounds how many run at once.
    async fn run<T: Send + 'static>(
        &self,
        _slot: &Slot,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(ServiceError::internal)
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no
    /// stored hash, so that an unknown user costs the same as a wrong password.
    pub async fn verify(
        &self,
        slot: &Slot,
        stored: Option<String>,
        password: &Password,
    ) -> Result<Verification, ServiceError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let password = password.clone();
        let wanted = self.params;
        self.run(slot, move || {
            let matches = verify_blocking(&phc, &password) && known;
            let needs_upgrade = matches
                && validate_hash(&phc).is_ok_and(|p| {
                    u64::from(p.m_cost) * u64::from(p.t_cost)
                        < u64::from(wanted.m_cost) * u64::from(wanted.t_cost)
                });
            Verification {
                matches,
                needs_upgrade,
            }
        })
        .await
    }

    /// Which of `hashes` `password` matches (current-password and history checks).
    pub async fn matches_any(
        &self,
        slot: &Slot,
        hashes: Vec<String>,
        password: &Password,
    ) -> Result<Vec<bool>, ServiceError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let password = password.clone();
        self.run(slot, move || {
            hashes
                .iter()
                .map(|h| verify_blocking(h, &password))
                .collect()
        })
        .await
    }

    /// A fresh argon2id PHC hash with the configured parameters.
    pub async fn hash(&self, slot: &Slot, password: &Password) -> Result<String, ServiceError> {
        let password = password.clone();
        let params = self.params;
        self.run(slot, move || hash_blocking(params, &password))
            .await?
            .map_err(ServiceError::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_with_the_configured_parameters() {
        let pw = Password::normalise("correct horse battery staple");
        let phc = hash_blocking(HashParams::default(), &pw).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(validate_hash(&phc), Ok(HashParams::default()));
        assert!(verify_blocking(&phc, &pw));
        assert!(!verify_blocking(&phc, &Password::normalise("wrong")));
    }

    #[test]
    fn foreign_hashes_are_validated() {
        assert_eq!(validate_hash("plain"), Err(HashFormatError::NotPhc));
        assert_eq!(
            validate_hash(
                "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
            ),
            Err(HashFormatError::NotArgon2id)
        );
        assert!(matches!(
            validate_hash(
                "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
            ),
            Err(HashFormatError::OutOfBounds("m", _))
        ));
        assert!(!verify_blocking(
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
            &Password::normalise("x")
        ));
    }
}
