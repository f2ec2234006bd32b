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

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
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

/// OWASP's argon2id configurations (memory in KiB, iterations), all of equal strength:
/// a deployment's parameters must reach one of them in both memory and iterations.
pub const OWASP_MINIMUMS: [(u32, u32); 5] = [
    (47_104, 1),
    (19_456, 2),
    (12_288, 3),
    (9_216, 4),
    (7_168, 5),
];

impl HashParams {
    /// What one verification costs, in KiB-passes (memory × iterations): argon2 fills
    /// `m_cost` KiB `t_cost` times whatever the lanes, so this is its time up to a
    /// constant.
    pub fn cost(&self) -> u64 {
        u64::from(self.m_cost) * u64::from(self.t_cost)
    }

    /// Checks parameters a deployment configures: at least one of OWASP's
    /// configurations, within the bounds every stored hash must keep.
    pub fn check_configured(&self) -> Result<(), CryptoError> {
        if !OWASP_MINIMUMS
            .iter()
            .any(|(m, t)| self.m_cost >= *m && self.t_cost >= *t)
        {
            return Err(CryptoError::BelowMinimums(*self));
        }
        for (name, value, range) in [
            ("memory", self.m_cost, M_COST_RANGE),
            ("iterations", self.t_cost, T_COST_RANGE),
            ("parallelism", self.p_cost, P_COST_RANGE),
        ] {
            if !range.contains(&value) {
                return Err(CryptoError::OutOfRange { name, value, range });
            }
        }
        if self.m_cost < 8 * self.p_cost {
            return Err(CryptoError::TooLittleMemoryPerLane);
        }
        Ok(())
    }
}

impl std::fmt::Display for HashParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m={},t={},p={}", self.m_cost, self.t_cost, self.p_cost)
    }
}

/// Bounds on the parameters of a stored hash. Anything outside is refused at import
/// and never verified: a hash with 4 GiB of memory would be a denial of service.
pub const M_COST_RANGE: std::ops::RangeInclusive<u32> = 7_168..=262_144;
pub const T_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
pub const P_COST_RANGE: std::ops::RangeInclusive<u32> = 1..=16;

/// Why hashing could not be done, or configured parameters are refused.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "argon2 parameters m={} KiB, t={} are below OWASP's minimums (m=19456 KiB with t=2, \
         or m=47104 with t=1, 12288 with t=3, 9216 with t=4, 7168 with t=5)",
        .0.m_cost, .0.t_cost
    )]
    BelowMinimums(HashParams),
    #[error("argon2 {name} {value} is outside {range:?}")]
    OutOfRange {
        name: &'static str,
        value: u32,
        range: std::ops::RangeInclusive<u32>,
    },
    #[error("argon2 memory must be at least 8 KiB per lane")]
    TooLittleMemoryPerLane,
    /// The argon2 crate refused the parameters or the output (it should not, within the
    /// bounds above).
    #[error("argon2: {0}")]
    Argon2(#[from] argon2::Error),
    #[error("PHC string: {0}")]
    Phc(#[from] argon2::password_hash::Error),
}

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
    #[error(
        "its argon2 parameters ({found}) cost more to verify than this deployment's \
         ({configured}): one verification cost per deployment, so that a wrong password takes \
         as long for every user; raise --argon2-memory / --argon2-iterations (the same for \
         import and serve) to at least the hash's, or re-export it with ours"
    )]
    Costlier {
        found: HashParams,
        configured: HashParams,
    },
}

/// [`validate_hash`], and the hash costs no more to verify than `configured` (contract
/// §10: `import` refuses a costlier one, which would make a wrong password for that user
/// slower than for any other — a timing oracle — and every anonymous guess dearer).
pub fn validate_imported_hash(
    phc: &str,
    configured: HashParams,
) -> Result<HashParams, HashFormatError> {
    let found = validate_hash(phc)?;
    if found.cost() > configured.cost() {
        return Err(HashFormatError::Costlier { found, configured });
    }
    Ok(found)
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

/// argon2's working memory (`m_cost` KiB), kept from one operation to the next.
///
/// `Argon2::hash_password_into` allocates and fills a fresh buffer on every call: at
/// the default parameters 19 MiB written and page-faulted in, ~10 % of the operation,
/// and glibc keeps such buffers in per-thread arenas, so a server's resident memory grew
/// by a buffer per blocking thread. A `Scratch` is allocated once and reused; argon2
/// writes every block before reading it, so what a previous operation left behind never
/// affects a result. It holds derived state only, never a plaintext.
pub struct Scratch {
    blocks: Vec<Block>,
    /// The most blocks kept; a larger operation (a stored hash with a bigger `m_cost`,
    /// within [`M_COST_RANGE`]) gets a buffer of its own, dropped after it.
    keep: usize,
}

impl Scratch {
    /// Memory for operations of up to `params.m_cost` KiB, allocated on first use.
    pub fn new(params: HashParams) -> Self {
        Scratch {
            blocks: Vec::new(),
            keep: params.m_cost as usize,
        }
    }

    /// Runs `f` with at least `count` blocks.
    fn with<T>(&mut self, count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if count > self.keep {
            return f(&mut vec![Block::default(); count]);
        }
        if self.blocks.len() < count {
            self.blocks = vec![Block::default(); count];
        }
        f(&mut self.blocks[..count])
    }
}

thread_local! {
    /// The scratch of [`hash_blocking`] and [`verify_blocking`] (import's worker
    /// threads, benchmarks, tests): one per thread, sized to the default parameters.
    static THREAD_SCRATCH: std::cell::RefCell<Scratch> =
        std::cell::RefCell::new(Scratch::new(HashParams::default()));
}

/// Hashes on the current thread with this thread's scratch memory.
pub fn hash_blocking(params: HashParams, password: &Password) -> Result<String, CryptoError> {
    THREAD_SCRATCH.with(|scratch| hash_with(params, password, &mut scratch.borrow_mut()))
}

/// Verifies on the current thread with this thread's scratch memory; a malformed or
/// out-of-bounds hash never matches.
pub fn verify_blocking(phc: &str, password: &Password) -> bool {
    THREAD_SCRATCH.with(|scratch| verify_with(phc, password, &mut scratch.borrow_mut()))
}

/// A fresh argon2id PHC string for `password` (random 16-byte salt, 32-byte output),
/// computed in `scratch`.
pub fn hash_with(
    params: HashParams,
    password: &Password,
    scratch: &mut Scratch,
) -> Result<String, CryptoError> {
    let salt = SaltString::generate(&mut OsRng);
    let argon2 = argon2(params)?;
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    scratch.with(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(
            password.expose().as_bytes(),
            salt_bytes,
            &mut out,
            blocks,
        )
    })?;
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, computed in `scratch`. A hash that
/// fails [`validate_hash`] never matches and costs nothing. The outputs are compared in
/// constant time.
pub fn verify_with(phc: &str, password: &Password, scratch: &mut Scratch) -> bool {
    if validate_hash(phc).is_err() {
        return false;
    }
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let Some(out) = out.get_mut(..expected.len()) else {
        return false;
    };
    let computed = scratch.with(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(password.expose().as_bytes(), salt_bytes, out, blocks)
    });
    computed.is_ok() && Output::new(out).is_ok_and(|out| out == expected)
}

/// Argon2id work of `cost` KiB-passes (memory × iterations, at most the configured
/// memory), its result thrown away: what checking a hash of that much more cost takes.
fn burn(cost: u64, wanted: &HashParams, scratch: &mut Scratch) {
    let t = cost.div_ceil(u64::from(wanted.m_cost).max(8)).max(1);
    let m = (cost / t).max(8);
    let (Ok(m), Ok(t)) = (u32::try_from(m), u32::try_from(t)) else {
        return;
    };
    let Ok(params) = Params::new(m, t, 1, None) else {
        return;
    };
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut out = [0u8; 32];
    let _ = scratch.with(argon2.params().block_count(), |blocks| {
        argon2.hash_password_into_with_memory(b"", &[0u8; 16], &mut out, blocks)
    });
}

/// The result of checking a caller's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash's parameters differ from the configured ones (weaker or
    /// stronger): it should be replaced, so that every user costs the same to verify.
    pub needs_rehash: bool,
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
    gate: Arc<ComputeGate>,
    /// How long one operation took at start-up (the dummy hash).
    one_operation: Duration,
}

/// At most `cores` argon2 operations run at once, whoever asks: the gate holds one
/// [`Scratch`] per core, and an operation runs with one taken from it (a blocking thread
/// waits while none is left). Resident memory for argon2 is thus `cores × m_cost`,
/// however many threads ran the work. Admission lets one request more in than there are
/// cores, so when an operation finishes the next one is already waiting here and starts
/// on the freed core at once (a thread-to-thread wake-up), instead of after the finishing
/// request's task, the admission queue and the next request's task have each run. With
/// admission alone at one request per core, that hand-off left 7–11 % of the cores idle
/// while requests queued (the kit's heavy rows at concurrency 8 and 32). Two more would
/// hide the sign-in's reservation (a database write with the slot held) better — heavy
/// c=8 and c=32 at 90–99 % of the limit instead of 84–90 % — but give an attacker with
/// many connections one more slot: an admin kept 42 % of its rate against 8 connections
/// of crafted changes instead of 50–53 %.
///
/// When several operations wait, a freed core goes to the one whose address has the
/// fewest requests outstanding (holding a slot or queued for one), then first come: an
/// address that asks for little is not kept waiting behind one that asks for much. With
/// first come alone, a learner's 8 connections of crafted-password changes, each at the
/// gate at every step, held an admin's 2 connections to 46 % of their rate alone.
struct ComputeGate {
    state: std::sync::Mutex<GateState>,
    handed: std::sync::Condvar,
}

#[derive(Default)]
struct GateState {
    free: Vec<Scratch>,
    /// Waiting operations: (ticket, rank), and the scratches handed to tickets.
    waiting: Vec<(u64, usize)>,
    handed: Vec<(u64, Scratch)>,
    next: u64,
}

impl ComputeGate {
    /// `n` scratches for operations of up to `params`, each allocated on first use.
    fn new(n: usize, params: HashParams) -> Self {
        ComputeGate {
            state: std::sync::Mutex::new(GateState {
                free: (0..n.max(1)).map(|_| Scratch::new(params)).collect(),
                ..GateState::default()
            }),
            handed: std::sync::Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` with a scratch once a core is free, waiters of lower `rank` first;
    /// call on a blocking thread.
    fn run<T>(&self, rank: usize, work: impl FnOnce(&mut Scratch) -> T) -> T {
        let scratch = {
            let mut state = self.lock();
            match state.free.pop() {
                Some(scratch) => scratch,
                None => {
                    let ticket = state.next;
                    state.next += 1;
                    state.waiting.push((ticket, rank));
                    loop {
                        if let Some(i) = state.handed.iter().position(|(t, _)| *t == ticket) {
                            break state.handed.swap_remove(i).1;
                        }
                        state = self.handed.wait(state).unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
        };
        // Given back (or handed on) even if `work` panics.
        struct Permit<'a> {
            gate: &'a ComputeGate,
            scratch: Scratch,
        }
        impl Drop for Permit<'_> {
            fn drop(&mut self) {
                let kept = Scratch {
                    blocks: Vec::new(),
                    keep: self.scratch.keep,
                };
                let scratch = std::mem::replace(&mut self.scratch, kept);
                let mut state = self.gate.lock();
                let next = state
                    .waiting
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (ticket, rank))| (*rank, *ticket))
                    .map(|(i, _)| i);
                match next {
                    Some(i) => {
                        let (ticket, _) = state.waiting.remove(i);
                        state.handed.push((ticket, scratch));
                        drop(state);
                        self.gate.handed.notify_all();
                    }
                    None => state.free.push(scratch),
                }
            }
        }
        let mut permit = Permit {
            gate: self,
            scratch,
        };
        work(&mut permit.scratch)
    }
}

impl PasswordHasher {
    /// `slots` argon2 operations run at once, for `slots + 1` admitted requests (see
    /// [`ComputeGate`]); `max_queue` more requests may wait, each at most `max_wait`.
    pub fn new(
        params: HashParams,
        slots: usize,
        max_queue: usize,
        max_wait: Duration,
    ) -> Result<Self, CryptoError> {
        let mut random = [0u8; 24];
        rand::Rng::fill(&mut OsRng, &mut random);
        let dummy = Password::normalise(
            &random
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
        let gate = ComputeGate::new(slots, params);
        let started = std::time::Instant::now();
        let dummy_hash = gate.run(0, |scratch| hash_with(params, &dummy, scratch))?;
        let one_operation = started.elapsed();
        Ok(PasswordHasher {
            params,
            // Until slots have been held, assume a change's three operations.
            admission: Admission::new(slots.max(1) + 1, max_queue, max_wait, one_operation * 3),
            gate: Arc::new(gate),
            dummy_hash: dummy_hash.into(),
            one_operation,
        })
    }

    /// The longest a request is expected to wait for a hashing slot.
    pub fn max_wait(&self) -> Duration {
        self.admission.max_wait()
    }

    /// How long one argon2 operation took when the hasher was built: a first estimate of
    /// what an authentication costs, before any has been timed.
    pub fn one_operation(&self) -> Duration {
        self.one_operation
    }

    /// Whether a request from `client` would be admitted or queued now (see
    /// [`Admission::has_room`]).
    pub fn has_room(&self, client: &str) -> bool {
        self.admission.has_room(client)
    }

    /// (slots, slots held, waiting requests) of the admission queue, for `/metrics`.
    pub fn occupancy(&self) -> (usize, usize, usize) {
        self.admission.occupancy()
    }

    /// Takes a hashing slot for a request from `client` (its address), or answers
    /// `ServerBusy` when the queue is full or the wait bound passes.
    pub async fn admit(&self, client: &str) -> Result<Slot, ServiceError> {
        self.admission.acquire(client).await.map_err(|refusal| {
            log::debug!("hashing slot refused: {refusal:?}");
            ServiceError::ServerBusy
        })
    }

    /// Runs `work` on a blocking thread, once the gate has a core (and its scratch
    /// memory) for it. Only requests holding a slot get here.
    async fn run<T: Send + 'static>(
        &self,
        slot: &Slot,
        work: impl FnOnce(&mut Scratch) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let gate = self.gate.clone();
        let rank = slot.outstanding();
        tokio::task::spawn_blocking(move || gate.run(rank, work))
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
        self.run(slot, move |scratch| {
            let matches = verify_with(&phc, &password, scratch) && known;
            let stored = validate_hash(&phc).unwrap_or(wanted);
            if stored.cost() < wanted.cost() && !matches {
                // An imported hash cheaper than ours checks faster than the dummy an
                // unknown e-mail gets: do the difference as argon2 work, so the failure
                // takes as long however loaded the machine (a timer would not).
                burn(wanted.cost() - stored.cost(), &wanted, scratch);
            }
            Verification {
                matches,
                needs_rehash: matches && stored != wanted,
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
        self.run(slot, move |scratch| {
            hashes
                .iter()
                .map(|h| verify_with(h, &password, scratch))
                .collect()
        })
        .await
    }

    /// A fresh argon2id PHC hash with the configured parameters.
    pub async fn hash(&self, slot: &Slot, password: &Password) -> Result<String, ServiceError> {
        let password = password.clone();
        let params = self.params;
        self.run(slot, move |scratch| hash_with(params, &password, scratch))
            .await?
            .map_err(ServiceError::internal)
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

    /// The gate never lets more operations run at once than it has cores for, and gives
    /// every permit back.
    #[test]
    fn the_compute_gate_bounds_concurrent_operations() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let gate = Arc::new(ComputeGate::new(2, HashParams::default()));
        let (live, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gate, live, most) = (gate.clone(), live.clone(), most.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        gate.run(0, |_| {
                            let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_micros(200));
                            live.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(gate.lock().free.len(), 2);
    }

    /// A freed core goes to the waiting operation of lowest rank (the address with the
    /// fewest requests outstanding), not to whoever waited first.
    #[test]
    fn the_compute_gate_serves_the_lowest_rank_first() {
        use std::sync::mpsc;
        let gate = Arc::new(ComputeGate::new(1, HashParams::default()));
        let (order_tx, order_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let holder = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.run(0, |_| release_rx.recv().ok()))
        };
        while gate.lock().free.len() == 1 {
            std::thread::yield_now();
        }
        let mut waiters = Vec::new();
        for rank in [8, 8, 2] {
            let (waiting_gate, order_tx) = (gate.clone(), order_tx.clone());
            waiters.push(std::thread::spawn(move || {
                waiting_gate.run(rank, |_| order_tx.send(rank).ok())
            }));
            // Queued in this order.
            while gate.lock().waiting.len() < waiters.len() {
                std::thread::yield_now();
            }
        }
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        for w in waiters {
            w.join().unwrap();
        }
        let order: Vec<usize> = order_rx.try_iter().collect();
        assert_eq!(order, vec![2, 8, 8]);
        assert_eq!(gate.lock().free.len(), 1);
    }

    /// Hashes made with the reused scratch are the argon2 crate's own PHC strings: its
    /// verifier accepts ours and ours accepts its, across parameters and with a scratch
    /// first used for a larger or smaller operation.
    #[test]
    fn the_reused_scratch_agrees_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let pw = Password::normalise("Pässwört-Ünïcode-1");
        let mut scratch = Scratch::new(HashParams::default());
        for params in [
            HashParams::default(),
            HashParams {
                m_cost: 8_192,
                t_cost: 1,
                p_cost: 2,
            },
            HashParams {
                m_cost: 32_768,
                t_cost: 1,
                p_cost: 1,
            },
        ] {
            let ours = hash_with(params, &pw, &mut scratch).unwrap();
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(pw.expose().as_bytes(), &parsed)
                    .is_ok()
            );
            let salt = SaltString::generate(&mut OsRng);
            let theirs = argon2(params)
                .unwrap()
                .hash_password(pw.expose().as_bytes(), &salt)
                .unwrap()
                .to_string();
            assert!(verify_with(&theirs, &pw, &mut scratch), "{theirs}");
            assert!(!verify_with(
                &theirs,
                &Password::normalise("Pässwört-Ünïcode-2"),
                &mut scratch
            ));
            assert_eq!(validate_hash(&ours), Ok(params));
        }
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
