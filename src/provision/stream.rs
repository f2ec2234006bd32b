//! The second pass of an import: the users, streamed. Three threads form a pipeline:
//!
//! 1. **read** (a scoped thread): parses the document again, skipping everything but the
//!    users, one [`UserDoc`] at a time; validates each against its account's facts from
//!    the first pass, checks it against the ids and e-mails seen so far, and sends
//!    batches of [`BATCH`] users on;
//! 2. **hash** (a scoped thread): hashes the batch's plain passwords on every core
//!    (rayon) while the reader goes on with the next batch;
//! 3. **write** (the calling thread): hands each batch to the store's one transaction.
//!
//! The channels hold two batches each, so a slow stage holds the others back instead of
//! letting batches pile up. Whatever stage fails first stops the others, and the store
//! rolls back: nothing is written unless the whole file is good, and the transaction
//! commits only after the reader's explicit end (a reader that vanished is a failure).
//!
//! The ids and e-mail keys seen are kept as 96-bit keyed hashes, not strings: 16 bytes an
//! entry with its index, for the "appears twice" and "already used by" errors. (Two
//! distinct ids colliding is a 1 in 10^16 chance for a million users.)

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rayon::prelude::*;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{
    AccountFacts, ImportError, Open, UserDoc, invalid, parse_error, plan_user, unreadable,
};
use crate::crypto::{self, HashParams};
use crate::domain::records::{AccountPlan, ImportSummary, UserBatch, UserPlan};
use crate::domain::{Password, Role};
use crate::store::{Store, StoreError};

/// Users per batch: large enough for the store's multi-row statements and for rayon to
/// spread a batch's argon2 work, small enough that a few in flight cost little memory.
const BATCH: usize = 4096;
/// Batches each channel holds.
const IN_FLIGHT: usize = 2;

/// What one stage hands the next.
enum Piece<T> {
    Batch(T),
    /// The reader got to the end of the document and every check passed.
    Done,
    Failed(ImportError),
}

/// Validated users with the plain passwords still to hash (index into `users`).
struct Staged {
    account: usize,
    users: Vec<UserPlan>,
    plain: Vec<(usize, Password)>,
}

/// Streams the users of the document `open` opens into `store`, after the accounts
/// `plans` (with `facts`, in the same order).
pub(super) fn import_users(
    store: &Store,
    open: &Open<'_>,
    plans: &[AccountPlan],
    facts: &[AccountFacts],
    params: HashParams,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, ImportError> {
    let read = open().map_err(unreadable)?;
    std::thread::scope(|scope| {
        let (staged_tx, staged_rx) = sync_channel::<Piece<Staged>>(IN_FLIGHT);
        let (batch_tx, batch_rx) = sync_channel::<Piece<UserBatch>>(IN_FLIGHT);
        scope.spawn(move || {
            let mut reader = Reader::new(facts, params, staged_tx.clone());
            let end = match reader.run(read) {
                Ok(()) => Piece::Done,
                Err(e) => Piece::Failed(e),
            };
            // A closed channel: the writer stopped first and says why.
            let _ = staged_tx.send(end);
        });
        scope.spawn(move || hash_batches(staged_rx, batch_tx, params));
        // The writer owns the receiving end: when it returns, the stages before it see
        // their sends fail and stop, and the scope can join them.
        write_batches(store, plans, batch_rx, progress)
    })
}

/// Hashes each batch's plain passwords on all cores, in order.
fn hash_batches(
    staged: Receiver<Piece<Staged>>,
    out: SyncSender<Piece<UserBatch>>,
    params: HashParams,
) {
    for piece in staged {
        let next = match piece {
            Piece::Batch(mut batch) => {
                let hashed: Vec<(usize, Result<String, crypto::CryptoError>)> =
                    std::mem::take(&mut batch.plain)
                        .into_par_iter()
                        .map(|(index, plain)| (index, crypto::hash_blocking(params, &plain)))
                        .collect();
                let mut failed = None;
                for (index, hash) in hashed {
                    match hash {
                        Ok(hash) => batch.users[index].password_hash = Some(hash),
                        Err(e) => failed = Some(e),
                    }
                }
                match failed {
                    Some(e) => Piece::Failed(ImportError::Hash(e)),
                    None => Piece::Batch(UserBatch {
                        account: batch.account,
                        users: batch.users,
                    }),
                }
            }
            Piece::Done => Piece::Done,
            Piece::Failed(e) => Piece::Failed(e),
        };
        let stop = !matches!(next, Piece::Batch(_));
        if out.send(next).is_err() || stop {
            return;
        }
    }
}

/// Feeds the store's import the hashed batches; the reader's failure, or its vanishing
/// before its end, aborts it.
fn write_batches(
    store: &Store,
    plans: &[AccountPlan],
    batches: Receiver<Piece<UserBatch>>,
    progress: &dyn Fn(u64),
) -> Result<ImportSummary, ImportError> {
    let mut failure = None;
    let result = store.import(
        plans,
        &mut || match batches.recv() {
            Ok(Piece::Batch(batch)) => Ok(Some(batch)),
            Ok(Piece::Done) => Ok(None),
            Ok(Piece::Failed(e)) => {
                failure = Some(e);
                Err(StoreError::Aborted)
            }
            Err(_) => {
                failure = Some(invalid("$", "the import's reader stopped unexpectedly"));
                Err(StoreError::Aborted)
            }
        },
        progress,
    );
    drop(batches);
    match (result, failure) {
        (_, Some(e)) => Err(e),
        (Ok(summary), None) => Ok(summary),
        (Err(e), None) => Err(ImportError::Store(e)),
    }
}

/// A 96-bit keyed hash of an id or e-mail key.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u32; 3]);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a keyed hash: its first 64 bits are the table's hash.
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// The hasher of [`Key`]-keyed maps: the key's own bits.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Index (in the account's users) by key.
type Seen = HashMap<Key, u32, BuildHasherDefault<Prehashed>>;

struct Keyer(RandomState, RandomState);

impl Keyer {
    fn key(&self, s: &str) -> Key {
        let (a, b) = (self.0.hash_one(s), self.1.hash_one(s));
        Key([a as u32, (a >> 32) as u32, b as u32])
    }
}

/// A stored user the file must list (or the import fails with this error): one this
/// file's user takes the e-mail or owner role of.
struct Pending {
    holder: Key,
    path: String,
    message: String,
}

/// The read stage's state: the account whose users are being read, and what was seen.
struct Reader<'a> {
    facts: &'a [AccountFacts],
    params: HashParams,
    out: SyncSender<Piece<Staged>>,
    keyer: Keyer,
    account: usize,
    ids: Seen,
    emails: Seen,
    owners: usize,
    pending: Vec<Pending>,
    batch: Staged,
    /// Why the reader stopped the parse (a validation failure, or the writer gone).
    stopped: Option<ImportError>,
}

impl<'a> Reader<'a> {
    fn new(facts: &'a [AccountFacts], params: HashParams, out: SyncSender<Piece<Staged>>) -> Self {
        Reader {
            facts,
            params,
            out,
            keyer: Keyer(RandomState::new(), RandomState::new()),
            account: 0,
            ids: Seen::default(),
            emails: Seen::default(),
            owners: 0,
            pending: Vec::new(),
            batch: Staged {
                account: 0,
                users: Vec::new(),
                plain: Vec::new(),
            },
            stopped: None,
        }
    }

    fn run(&mut self, read: impl std::io::Read) -> Result<(), ImportError> {
        let mut de = serde_json::Deserializer::from_reader(super::buffered(read));
        let mut track = serde_path_to_error::Track::new();
        let parsed =
            DocSeed(self).deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
        if let Some(e) = self.stopped.take() {
            return Err(e);
        }
        parsed
            .map_err(|inner| parse_error(serde_path_to_error::Error::new(track.path(), inner)))?;
        self.finish_account()?;
        self.flush()
    }

    /// Sends the batch on (an error when the writer has stopped).
    fn flush(&mut self) -> Result<(), ImportError> {
        if self.batch.users.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(
            &mut self.batch,
            Staged {
                account: self.account,
                users: Vec::with_capacity(BATCH),
                plain: Vec::new(),
            },
        );
        self.out
            .send(Piece::Batch(batch))
            .map_err(|_| invalid("$", "the import stopped"))
    }

    /// The end of an account's users: a stored user one of them displaced must be listed.
    fn finish_account(&mut self) -> Result<(), ImportError> {
        if let Some(p) = self
            .pending
            .iter()
            .find(|p| !self.ids.contains_key(&p.holder))
        {
            return Err(invalid(p.path.clone(), p.message.clone()));
        }
        Ok(())
    }

    /// The start of account `account`'s users.
    fn begin_account(&mut self, account: usize) -> Result<(), ImportError> {
        self.finish_account()?;
        self.flush()?;
        self.account = account;
        self.batch.account = account;
        let users = self
            .facts
            .get(account)
            .map_or(0, |f| usize::try_from(f.users).unwrap_or(0));
        self.ids = Seen::with_capacity_and_hasher(users, Default::default());
        self.emails = Seen::with_capacity_and_hasher(users, Default::default());
        self.owners = 0;
        self.pending.clear();
        Ok(())
    }

    /// Validates user `index` of the current account and adds it to the batch.
    fn user(&mut self, index: usize, u: UserDoc) -> Result<(), ImportError> {
        let all: &'a [AccountFacts] = self.facts;
        let facts = all
            .get(self.account)
            .ok_or_else(|| invalid("$", "the document changed while it was read"))?;
        let path = &facts.path;
        let upath = || format!("{path}.users[{index}]");
        let existing = &facts.existing;
        let known = super::Known {
            departments: &facts.departments,
            roles: &facts.roles,
            existing,
        };
        let is_new = !existing.users.contains(&u.id);
        let (mut plan, plain) = plan_user(&upath(), u, &known, is_new, self.params)?;
        let at = u32::try_from(index).unwrap_or(u32::MAX);
        if self.ids.insert(self.keyer.key(&plan.ext_id), at).is_some() {
            return Err(invalid(
                format!("{}.id", upath()),
                format!("user \"{}\" appears twice", plan.ext_id),
            ));
        }
        if let Some(first) = self.emails.insert(self.keyer.key(&plan.email_key), at) {
            return Err(invalid(
                format!("{}.email", upath()),
                format!("e-mail already used by {path}.users[{first}]"),
            ));
        }
        if plan.role == Role::Owner {
            self.owners += 1;
            if self.owners > 1 {
                return Err(invalid(
                    format!("{}.role", upath()),
                    "an account has one owner",
                ));
            }
        }
        // A stored user whose e-mail or owner role this user takes gives it up first, if
        // the file has not written them yet; the file must list them (checked at the end).
        let mut displaced = |holder: &String, field: &str, message: String| {
            let key = self.keyer.key(holder);
            if holder != &plan.ext_id && !self.ids.contains_key(&key) {
                plan.release.push(holder.clone());
                self.pending.push(Pending {
                    holder: key,
                    path: format!("{}.{field}", upath()),
                    message,
                });
            }
        };
        if let Some(holder) = existing.emails.get(&plan.email_key) {
            displaced(
                holder,
                "email",
                format!("e-mail already used by stored user \"{holder}\""),
            );
        }
        if let (Role::Owner, Some(owner)) = (plan.role, &existing.owner) {
            displaced(
                owner,
                "role",
                format!("an account has one owner, and stored user \"{owner}\" is it"),
            );
        }
        if let Some(plain) = plain {
            self.batch.plain.push((self.batch.users.len(), plain));
        }
        self.batch.users.push(plan);
        if self.batch.users.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Stops the parse with `e`, kept to be reported instead of the parser's error.
    fn stop<E: serde::de::Error>(&mut self, e: ImportError) -> E {
        self.stopped = Some(e);
        E::custom("stopped")
    }
}

/// `{"accounts": [...]}`: only `accounts` is read (the first pass checked the rest).
struct DocSeed<'r, 'a>(&'r mut Reader<'a>);

impl<'de> DeserializeSeed<'de> for DocSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a provisioning document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "accounts" {
                map.next_value_seed(AccountsSeed(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct AccountsSeed<'r, 'a>(&'r mut Reader<'a>);

impl<'de> DeserializeSeed<'de> for AccountsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AccountsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of accounts")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(AccountSeed(&mut *self.0, index))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }
}

struct AccountSeed<'r, 'a>(&'r mut Reader<'a>, usize);

impl<'de> DeserializeSeed<'de> for AccountSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AccountSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an account")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (reader, account) = (self.0, self.1);
        while let Some(key) = map.next_key::<String>()? {
            if key == "users" {
                if let Err(e) = reader.begin_account(account) {
                    return Err(reader.stop(e));
                }
                map.next_value_seed(UsersSeed(&mut *reader))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct UsersSeed<'r, 'a>(&'r mut Reader<'a>);

impl<'de> DeserializeSeed<'de> for UsersSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UsersSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of users")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(user) = seq.next_element::<UserDoc>()? {
            if let Err(e) = self.0.user(index, user) {
                return Err(self.0.stop(e));
            }
            index += 1;
        }
        Ok(())
    }
}
