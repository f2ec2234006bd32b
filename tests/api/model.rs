//! Contract §5 proven against a model (issue 13): random department trees, roles,
//! custom-role grants and statuses are imported into the backend under test, and for
//! every (caller, target) pair the service's decision — the store's scope facts
//! (`find_target`) and the rules (`authorise`) — must equal what a reference model
//! written here as set algebra decides, reason and all. And the invariant holds: if C may
//! change T's password and C is neither owner nor account admin, everything T can reach
//! lies within C's reach.
//!
//! `PROPTEST_CASES=N` runs a longer campaign (the suite runs 48 cases); a failing case is
//! shrunk and kept in `tests/proptest-regressions/`, replayed first by every run.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Value, json};
use soap_passwd::crypto::{HashParams, hash_blocking};
use soap_passwd::domain::lockout::ThrottlePolicy;
use soap_passwd::domain::records::{Settlement, SignIn, SignInGate, ThrottleKey};
use soap_passwd::domain::{AccountUrl, DenyReason, Email, Password};
use soap_passwd::service::permission::authorise;
use soap_passwd::store::Store;

use crate::helpers::*;

const URL: &str = "http://model.example.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    Owner,
    AccountAdmin,
    DepartmentAdmin,
    User,
}

#[derive(Debug, Clone)]
struct Person {
    rank: Rank,
    department: usize,
    /// Departments administered (department admins only).
    manages: Vec<usize>,
    /// (custom role, departments).
    grants: Vec<(usize, Vec<usize>)>,
    deactivated: bool,
    external: bool,
}

#[derive(Debug, Clone)]
struct Directory {
    /// parent[i] < i for every department but the root (0).
    parent: Vec<usize>,
    /// Whether custom role r grants `change_password` (and not only something else).
    role_changes: Vec<bool>,
    people: Vec<Person>,
    self_service: bool,
}

fn directory() -> impl Strategy<Value = Directory> {
    (1usize..=7, 0usize..=3, 2usize..=7, any::<bool>())
        .prop_flat_map(|(departments, roles, people, self_service)| {
            let parent = (0..departments)
                .map(|i| {
                    if i == 0 {
                        Just(0).boxed()
                    } else {
                        (0..i).boxed()
                    }
                })
                .collect::<Vec<_>>();
            let role_changes = proptest::collection::vec(any::<bool>(), roles);
            let person = (
                0u8..4,
                0..departments,
                proptest::collection::vec(0..departments, 0..=2),
                proptest::collection::vec(
                    (
                        0..roles.max(1),
                        proptest::collection::vec(0..departments, 1..=2),
                    ),
                    0..=if roles == 0 { 0 } else { 2 },
                ),
                proptest::bool::weighted(0.15),
                proptest::bool::weighted(0.1),
            );
            (
                parent,
                role_changes,
                proptest::collection::vec(person, people),
                Just(self_service),
            )
        })
        .prop_map(|(parent, role_changes, people, self_service)| {
            let mut owner_taken = false;
            let people = people
                .into_iter()
                .map(
                    |(rank, department, manages, grants, deactivated, external)| {
                        let rank = match rank {
                            0 if !owner_taken => {
                                owner_taken = true;
                                Rank::Owner
                            }
                            0 | 3 => Rank::User,
                            1 => Rank::AccountAdmin,
                            _ => Rank::DepartmentAdmin,
                        };
                        let manages = if rank == Rank::DepartmentAdmin {
                            dedup(manages)
                        } else {
                            Vec::new()
                        };
                        let grants = grants
                            .into_iter()
                            .map(|(r, ds)| (r, dedup(ds)))
                            .collect::<Vec<_>>();
                        Person {
                            rank,
                            department,
                            manages,
                            grants,
                            deactivated,
                            external,
                        }
                    },
                )
                .collect();
            Directory {
                parent,
                role_changes,
                people,
                self_service,
            }
        })
}

fn dedup(v: Vec<usize>) -> Vec<usize> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

// ------------------------------------------------------------------------ the model

impl Directory {
    /// Department d and everything below it.
    fn subtree(&self, d: usize) -> BTreeSet<usize> {
        (0..self.parent.len())
            .filter(|&x| {
                let mut at = x;
                loop {
                    if at == d {
                        return true;
                    }
                    if at == 0 {
                        return false;
                    }
                    at = self.parent[at];
                }
            })
            .collect()
    }

    /// S of §5 rule 4: the subtrees C administers or holds `change_password` over.
    fn scope(&self, c: &Person) -> BTreeSet<usize> {
        let mut s = BTreeSet::new();
        for &m in &c.manages {
            s.extend(self.subtree(m));
        }
        for (role, ds) in &c.grants {
            if self.role_changes[*role] {
                for &d in ds {
                    s.extend(self.subtree(d));
                }
            }
        }
        s
    }

    /// Everything T administers or holds any role over.
    fn reach(&self, t: &Person) -> BTreeSet<usize> {
        let mut r = BTreeSet::new();
        for &m in &t.manages {
            r.extend(self.subtree(m));
        }
        for (_, ds) in &t.grants {
            for &d in ds {
                r.extend(self.subtree(d));
            }
        }
        r
    }

    /// Rules 2–4.
    fn by_rank(&self, c: &Person, t: &Person) -> Result<(), DenyReason> {
        match c.rank {
            Rank::Owner => Ok(()),
            Rank::AccountAdmin if t.rank == Rank::Owner => Err(DenyReason::OutranksCaller),
            Rank::AccountAdmin => Ok(()),
            Rank::DepartmentAdmin | Rank::User => {
                let s = self.scope(c);
                if !s.contains(&t.department) {
                    Err(DenyReason::NotInScope)
                } else if matches!(t.rank, Rank::Owner | Rank::AccountAdmin)
                    || !self.reach(t).is_subset(&s)
                {
                    Err(DenyReason::OutranksCaller)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// §5 in full, as the contract states it.
    fn decide(&self, c: usize, t: usize) -> Result<(), DenyReason> {
        let (caller, target) = (&self.people[c], &self.people[t]);
        if target.deactivated {
            return Err(DenyReason::UserDeactivated);
        }
        if target.external {
            return Err(DenyReason::ExternallyManaged);
        }
        if c == t {
            if self.self_service {
                return Ok(());
            }
            return self
                .by_rank(caller, target)
                .map_err(|_| DenyReason::SelfServiceDisabled);
        }
        self.by_rank(caller, target)
    }

    /// The provisioning file of this directory.
    fn json(&self, hash: &str) -> String {
        fn department(d: usize, parent: &[usize]) -> Value {
            let children: Vec<Value> = (1..parent.len())
                .filter(|&x| parent[x] == d)
                .map(|x| department(x, parent))
                .collect();
            json!({"id": format!("d{d}"), "name": format!("D{d}"), "children": children})
        }
        let roles: Vec<Value> = self
            .role_changes
            .iter()
            .enumerate()
            .map(|(r, changes)| {
                let permissions: Vec<&str> = if *changes {
                    vec!["change_password"]
                } else {
                    vec![]
                };
                json!({"id": format!("r{r}"), "name": format!("R{r}"), "permissions": permissions})
            })
            .collect();
        let users: Vec<Value> = self
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let rank = match p.rank {
                    Rank::Owner => "owner",
                    Rank::AccountAdmin => "account_admin",
                    Rank::DepartmentAdmin => "department_admin",
                    Rank::User => "user",
                };
                let mut u = json!({
                    "id": format!("u{i}"), "email": format!("u{i}@model.example.com"),
                    "password_hash": hash, "role": rank, "department": format!("d{}", p.department),
                    "status": if p.deactivated { "deactivated" } else { "active" },
                    "externally_managed": p.external,
                });
                if !p.manages.is_empty() {
                    u["manages"] = json!(p.manages.iter().map(|d| format!("d{d}")).collect::<Vec<_>>());
                }
                if !p.grants.is_empty() {
                    u["custom_roles"] = json!(
                        p.grants
                            .iter()
                            .map(|(r, ds)| json!({
                                "role": format!("r{r}"),
                                "departments": ds.iter().map(|d| format!("d{d}")).collect::<Vec<_>>(),
                            }))
                            .collect::<Vec<_>>()
                    );
                }
                u
            })
            .collect();
        json!({"accounts": [{
            "url": URL, "name": "Model",
            "policy": {"self_service": self.self_service},
            "roles": roles,
            "departments": [department(0, &self.parent)],
            "users": users,
        }]})
        .to_string()
    }
}

// ---------------------------------------------------------------------- the service

fn shared_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        hash_blocking(
            HashParams::default(),
            &Password::normalise("Model-Pass-1234"),
        )
        .expect("hash")
    })
}

/// Every (caller, target) decision of the service on `dir`, callers being its active,
/// locally managed users (only they can sign in).
fn service_decisions(dir: &Directory) -> Vec<(usize, usize, Result<(), DenyReason>)> {
    let db = TestDb::fresh();
    let store = Store::open(&db.database(), 2).expect("open store");
    soap_passwd::provision::import_json(&store, &dir.json(shared_hash()), HashParams::default())
        .expect("import the generated directory");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = chrono::Utc::now().timestamp_millis();
    let account_key = AccountUrl::key_of(URL);
    // Any user's sign-in names the account and the user as the service finds them.
    let sign_in_as = |i: usize| {
        let email_key = Email::key_of(&format!("u{i}@model.example.com"));
        let sign_in = SignIn {
            pair: ThrottleKey::pair(&account_key, &email_key),
            account_key: account_key.clone(),
            email_key,
            address: None,
            id: 1,
            policy: ThrottlePolicy::default(),
        };
        let gate = rt
            .block_on(store.reserve_sign_in(sign_in.clone(), now))
            .expect("reserve");
        rt.block_on(store.settle_sign_in(sign_in, Settlement::Abandoned, now))
            .expect("settle");
        match gate {
            SignInGate::Open(lookup) => lookup,
            SignInGate::Locked | SignInGate::Full => panic!("u{i} is locked out"),
        }
    };
    let mut out = Vec::new();
    for (c, caller) in dir.people.iter().enumerate() {
        if caller.deactivated || caller.external {
            continue;
        }
        let lookup = sign_in_as(c);
        let (Some(account), Some(caller_record)) = (lookup.account, lookup.user) else {
            panic!("u{c} not found by its sign-in");
        };
        for t in 0..dir.people.len() {
            let target = rt
                .block_on(store.find_target(account.id, caller_record.id, format!("u{t}"), 0))
                .expect("find_target")
                .unwrap_or_else(|| panic!("u{t} not found"));
            let decision = authorise(&caller_record, &target, account.policy.self_service);
            out.push((c, t, decision));
        }
    }
    out
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_decision_is_the_models_and_no_one_reaches_past_their_own(dir in directory()) {
        for (c, t, decided) in service_decisions(&dir) {
            let expected = dir.decide(c, t);
            prop_assert_eq!(
                decided,
                expected,
                "caller u{} target u{} in {}",
                c,
                t,
                dir.json("HASH")
            );
            let caller = &dir.people[c];
            if decided.is_ok() && c != t && matches!(caller.rank, Rank::DepartmentAdmin | Rank::User) {
                let (reach, scope) = (dir.reach(&dir.people[t]), dir.scope(caller));
                prop_assert!(
                    reach.is_subset(&scope) && scope.contains(&dir.people[t].department),
                    "u{} may change u{} whose reach {:?} is not within {:?}",
                    c, t, reach, scope
                );
            }
        }
    }
}
