//! Contract §4: every row of the fault table, in both SOAP versions — faultcode,
//! faultstring, HTTP status, Content-Type, the detail element and its children — plus the
//! audit trail every attempt leaves.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::helpers::*;

/// The fields of an `UpdateUserPasswordRequest` as raw XML content (already escaped), so
/// a test can drop, repeat or corrupt any one of them.
#[derive(Clone)]
struct Fields {
    /// False drops the whole `<credentials>` element.
    credentials: bool,
    account_url: Option<String>,
    email: Option<String>,
    caller_password: Option<String>,
    /// Raw XML appended inside `<credentials>`.
    credentials_tail: String,
    user_id: Option<String>,
    password: Option<String>,
    /// Raw XML appended inside the operation element, after `password`.
    tail: String,
}

/// `Some(value)` escaped as element content.
fn text(value: &str) -> Option<String> {
    Some(esc(value))
}

impl Fields {
    /// `caller` sets `target`'s password to `new_password` in the demo account.
    fn new(caller: (&str, &str, &str), target: &str, new_password: &str) -> Self {
        Fields {
            credentials: true,
            account_url: text(ACCOUNT),
            email: text(caller.1),
            caller_password: text(caller.2),
            credentials_tail: String::new(),
            user_id: text(target),
            password: text(new_password),
            tail: String::new(),
        }
    }

    /// A request that succeeds: the d-sales admin sets the learner's password.
    fn valid() -> Self {
        Fields::new(SALES_ADMIN, LEARNER.0, STRONG)
    }

    fn xml(&self) -> String {
        fn field(name: &str, value: &Option<String>) -> String {
            value
                .as_ref()
                .map(|v| format!("<{name}>{v}</{name}>"))
                .unwrap_or_default()
        }
        let credentials = if self.credentials {
            format!(
                "<credentials>{}{}{}{}</credentials>",
                field("accountUrl", &self.account_url),
                field("email", &self.email),
                field("password", &self.caller_password),
                self.credentials_tail
            )
        } else {
            String::new()
        };
        format!(
            r#"<UpdateUserPasswordRequest xmlns="{API_NS}">{credentials}{}{}{}</UpdateUserPasswordRequest>"#,
            field("userId", &self.user_id),
            field("password", &self.password),
            self.tail
        )
    }
}

/// A `WrongParametersFault` whose message is a sentence that does not echo `sent`.
#[track_caller]
fn assert_parameter_fault(
    reply: &Reply,
    version: Soap,
    parameter: &str,
    violations: &[&str],
    sent: Option<&str>,
) {
    assert_wrong_parameters(reply, version, parameter, violations);
    let message = reply.text("message").unwrap_or_default();
    assert!(!message.trim().is_empty(), "no message: {}", reply.body);
    if let Some(sent) = sent.filter(|s| s.trim().len() > 2) {
        assert!(
            !message.contains(sent.trim()),
            "message echoes input: {message}"
        );
    }
}

#[track_caller]
fn assert_authentication_failed(reply: &Reply, version: Soap) {
    assert_client_fault(
        reply,
        version,
        "Authorization failed",
        "AuthenticationFailedFault",
    );
    assert_eq!(
        reply.text("code").as_deref(),
        Some("AUTHENTICATION_FAILED"),
        "{}",
        reply.body
    );
    assert!(
        !reply.text("message").unwrap_or_default().trim().is_empty(),
        "{}",
        reply.body
    );
}

#[track_caller]
fn assert_unknown_user(reply: &Reply, version: Soap) {
    assert_client_fault(reply, version, "Unknown user", "UnknownUserFault");
    assert_eq!(
        reply.text("code").as_deref(),
        Some("UNKNOWN_USER"),
        "{}",
        reply.body
    );
    assert!(
        !reply.text("message").unwrap_or_default().trim().is_empty(),
        "{}",
        reply.body
    );
}

/// Local names of the children of the detail element, in order.
fn detail_children(reply: &Reply) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::NsReader::from_str(&reply.body);
    let mut depth_in_detail: Option<usize> = None;
    let mut depth = 0usize;
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                depth += 1;
                match depth_in_detail {
                    Some(d) if depth == d + 2 => out.push(local),
                    None if local == "detail" || local == "Detail" => depth_in_detail = Some(depth),
                    _ => {}
                }
            }
            Ok(Event::Empty(e)) if depth_in_detail.is_some_and(|d| depth == d + 1) => {
                out.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Eof) | Err(_) => return out,
            _ => {}
        }
    }
}

fn request_id(reply: &Reply) -> String {
    reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Request-Id header")
        .to_string()
}

// ---------------------------------------------------------------- WrongParametersFault

#[test]
fn each_missing_parameter_is_a_wrong_parameters_fault_naming_it() {
    let app = spawn_app();
    let cases: Vec<(&str, Fields)> = vec![
        (
            "credentials",
            Fields {
                credentials: false,
                ..Fields::valid()
            },
        ),
        (
            "credentials/accountUrl",
            Fields {
                account_url: None,
                ..Fields::valid()
            },
        ),
        (
            "credentials/email",
            Fields {
                email: None,
                ..Fields::valid()
            },
        ),
        (
            "credentials/password",
            Fields {
                caller_password: None,
                ..Fields::valid()
            },
        ),
        (
            "userId",
            Fields {
                user_id: None,
                ..Fields::valid()
            },
        ),
        (
            "password",
            Fields {
                password: None,
                ..Fields::valid()
            },
        ),
    ];
    for v in BOTH {
        for (parameter, fields) in &cases {
            let reply = app.call(v, &fields.xml());
            assert_parameter_fault(&reply, v, parameter, &[], None);
            assert_eq!(
                detail_children(&reply),
                ["code", "message", "parameter"],
                "{}",
                reply.body
            );
        }
        // An empty operation element misses its first field.
        let reply = app.call(
            v,
            &format!(r#"<UpdateUserPasswordRequest xmlns="{API_NS}"/>"#),
        );
        assert_parameter_fault(&reply, v, "credentials", &[], None);
    }
}

#[test]
fn empty_or_whitespace_only_identifiers_are_wrong_parameters() {
    let app = spawn_app();
    for v in BOTH {
        for blank in ["", "   ", " \n\t "] {
            let cases = [
                (
                    "credentials/accountUrl",
                    Fields {
                        account_url: text(blank),
                        ..Fields::valid()
                    },
                ),
                (
                    "credentials/email",
                    Fields {
                        email: text(blank),
                        ..Fields::valid()
                    },
                ),
                (
                    "userId",
                    Fields {
                        user_id: text(blank),
                        ..Fields::valid()
                    },
                ),
            ];
            for (parameter, fields) in cases {
                let reply = app.call(v, &fields.xml());
                assert_parameter_fault(&reply, v, parameter, &[], None);
            }
        }
        // An empty element written as `<userId/>` is empty too.
        let reply = app.call(
            v,
            &Fields {
                user_id: None,
                tail: "<userId/>".into(),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_parameter_fault(&reply, v, "userId", &[], None);
    }
}

#[test]
fn empty_passwords_are_wrong_parameters() {
    let app = spawn_app();
    for v in BOTH {
        let reply = app.call(
            v,
            &Fields {
                caller_password: text(""),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_parameter_fault(&reply, v, "credentials/password", &[], None);
        let reply = app.call(
            v,
            &Fields {
                password: text(""),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_parameter_fault(&reply, v, "password", &[], None);
    }
}

#[test]
fn passwords_are_not_trimmed_so_a_padded_caller_password_fails_authentication() {
    let app = spawn_app();
    for v in BOTH {
        let padded = format!(" {} ", SALES_ADMIN.2);
        let reply = app.call(
            v,
            &Fields {
                caller_password: text(&padded),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_authentication_failed(&reply, v);
    }
}

#[test]
fn identifiers_are_trimmed_before_matching() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let fields = Fields {
            account_url: text(&format!("\n  {ACCOUNT}  \n")),
            email: text(&format!("  {}\t", SALES_ADMIN.1)),
            user_id: text(&format!(" {} ", LEARNER.0)),
            password: text(&format!("{STRONG}-trim{i}")),
            ..Fields::valid()
        };
        let reply = app.call(v, &fields.xml());
        assert!(reply.is_success(), "{}", reply.body);
    }
}

#[test]
fn values_one_past_their_bound_are_wrong_parameters() {
    let app = spawn_app();
    let long_url = format!("http://{}", "a".repeat(2049 - 7));
    let long_email = format!("{}@example.com", "a".repeat(255 - 12));
    let long_user_id = "u".repeat(129);
    let long_password = "Vq7#Lp2!".repeat(512) + "x";
    let long_multibyte_password = "é".repeat(2049);
    assert_eq!(long_url.chars().count(), 2049);
    assert_eq!(long_email.chars().count(), 255);
    assert_eq!(long_password.len(), 4097);
    assert_eq!(long_multibyte_password.len(), 4098);
    for v in BOTH {
        let cases = [
            (
                "credentials/accountUrl",
                &long_url,
                Fields {
                    account_url: text(&long_url),
                    ..Fields::valid()
                },
            ),
            (
                "credentials/email",
                &long_email,
                Fields {
                    email: text(&long_email),
                    ..Fields::valid()
                },
            ),
            (
                "userId",
                &long_user_id,
                Fields {
                    user_id: text(&long_user_id),
                    ..Fields::valid()
                },
            ),
            (
                "credentials/password",
                &long_password,
                Fields {
                    caller_password: text(&long_password),
                    ..Fields::valid()
                },
            ),
            (
                "password",
                &long_password,
                Fields {
                    password: text(&long_password),
                    ..Fields::valid()
                },
            ),
            // The bound is in bytes as sent: 2049 two-byte characters are too long.
            (
                "password",
                &long_multibyte_password,
                Fields {
                    password: text(&long_multibyte_password),
                    ..Fields::valid()
                },
            ),
        ];
        for (parameter, sent, fields) in cases {
            let reply = app.call(v, &fields.xml());
            assert_parameter_fault(&reply, v, parameter, &[], Some(sent));
        }
    }
}

#[test]
fn values_exactly_at_their_bound_pass_the_parameter_stage() {
    let app = spawn_app();
    let url = format!("http://{}", "a".repeat(2048 - 7));
    let email = format!("{}@example.com", "a".repeat(254 - 12));
    let password = "Vq7#Lp2!".repeat(512);
    assert_eq!(url.chars().count(), 2048);
    assert_eq!(email.chars().count(), 254);
    assert_eq!(password.len(), 4096);
    for v in BOTH {
        // An account URL of 2048 characters is looked up: no such account.
        let reply = app.call(
            v,
            &Fields {
                account_url: text(&url),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_authentication_failed(&reply, v);
        // An e-mail of 254 characters is looked up: no such user.
        let reply = app.call(
            v,
            &Fields {
                email: text(&email),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_authentication_failed(&reply, v);
        // A caller password of 4096 bytes is verified: wrong.
        let reply = app.call(
            v,
            &Fields {
                caller_password: text(&password),
                ..Fields::valid()
            }
            .xml(),
        );
        assert_authentication_failed(&reply, v);
        // A userId of 128 characters (counted as characters, not bytes) is looked up.
        for user_id in ["u".repeat(128), "é".repeat(128)] {
            let reply = app.call(
                v,
                &Fields {
                    user_id: text(&user_id),
                    ..Fields::valid()
                }
                .xml(),
            );
            assert_unknown_user(&reply, v);
        }
        // A new password of 4096 bytes reaches the policy, whose maximum is 128.
        let cases = [
            (password.clone(), &["TOO_LONG"][..]),
            ("é".repeat(2048), &["TOO_LONG", "TOO_COMMON"][..]),
        ];
        for (new_password, violations) in cases {
            let reply = app.call(
                v,
                &Fields {
                    password: text(&new_password),
                    ..Fields::valid()
                }
                .xml(),
            );
            assert_wrong_parameters(&reply, v, "password", violations);
        }
    }
}

#[test]
fn an_e_mail_that_is_not_an_address_is_a_wrong_parameters_fault() {
    let app = spawn_app();
    for v in BOTH {
        for bad in [
            "admin",
            "admin@",
            "@example.com",
            "ad min@example.com",
            "admin\u{85}@example.com",
        ] {
            let reply = app.call(
                v,
                &Fields {
                    email: text(bad),
                    ..Fields::valid()
                }
                .xml(),
            );
            assert_parameter_fault(&reply, v, "credentials/email", &[], None);
        }
    }
}

#[test]
fn a_field_given_twice_is_a_wrong_parameters_fault_naming_it() {
    let app = spawn_app();
    let cases: Vec<(&str, Fields)> = vec![
        (
            "userId",
            Fields {
                tail: format!("<userId>{}</userId>", LEARNER2.0),
                ..Fields::valid()
            },
        ),
        (
            "password",
            Fields {
                tail: format!("<password>{STRONG}-second</password>"),
                ..Fields::valid()
            },
        ),
        (
            "credentials",
            Fields {
                tail: format!(
                    "<credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials>",
                    OWNER.1, OWNER.2
                ),
                ..Fields::valid()
            },
        ),
        (
            "credentials/accountUrl",
            Fields {
                credentials_tail: format!("<accountUrl>{ACCOUNT}</accountUrl>"),
                ..Fields::valid()
            },
        ),
        (
            "credentials/email",
            Fields {
                credentials_tail: format!("<email>{}</email>", OWNER.1),
                ..Fields::valid()
            },
        ),
        (
            "credentials/password",
            Fields {
                credentials_tail: format!("<password>{}</password>", OWNER.2),
                ..Fields::valid()
            },
        ),
        (
            "passwordConfirm",
            Fields {
                tail: format!(
                    "<passwordConfirm>{STRONG}</passwordConfirm><passwordConfirm>{STRONG}</passwordConfirm>"
                ),
                ..Fields::valid()
            },
        ),
        // One qualified and one unqualified copy are still two copies.
        (
            "userId",
            Fields {
                tail: format!(
                    r#"<x:userId xmlns:x="{API_NS}">{}</x:userId><userId xmlns="">{}</userId>"#,
                    LEARNER.0, LEARNER2.0
                ),
                ..Fields::valid()
            },
        ),
    ];
    for v in BOTH {
        for (parameter, fields) in &cases {
            let reply = app.call(v, &fields.xml());
            assert_parameter_fault(&reply, v, parameter, &[], None);
        }
    }
    // Nothing changed: the learner still signs in with the demo password.
    let reply = app.change(Soap::V11, LEARNER, LEARNER.0, &format!("{STRONG}-self"));
    assert!(reply.is_success(), "{}", reply.body);
}

#[test]
fn a_field_holding_child_elements_is_a_wrong_parameters_fault_naming_it() {
    let app = spawn_app();
    let cases: Vec<(&str, Fields)> = vec![
        (
            "userId",
            Fields {
                user_id: Some(format!("<id>{}</id>", LEARNER.0)),
                ..Fields::valid()
            },
        ),
        (
            "userId",
            Fields {
                user_id: Some(format!(r#"{}<x:note xmlns:x="urn:x"/>"#, LEARNER.0)),
                ..Fields::valid()
            },
        ),
        (
            "password",
            Fields {
                password: Some(format!("{STRONG}<b/>")),
                ..Fields::valid()
            },
        ),
        (
            "credentials/accountUrl",
            Fields {
                account_url: Some(format!("<url>{ACCOUNT}</url>")),
                ..Fields::valid()
            },
        ),
        (
            "credentials/email",
            Fields {
                email: Some(format!("<i>{}</i>", SALES_ADMIN.1)),
                ..Fields::valid()
            },
        ),
        (
            "credentials/password",
            Fields {
                caller_password: Some(format!("<![CDATA[{}]]><x/>", SALES_ADMIN.2)),
                ..Fields::valid()
            },
        ),
        (
            "passwordConfirm",
            Fields {
                tail: format!("<passwordConfirm><p>{STRONG}</p></passwordConfirm>"),
                ..Fields::valid()
            },
        ),
        // The container the other way round: text where elements belong.
        (
            "credentials",
            Fields {
                credentials_tail: "stray text".into(),
                ..Fields::valid()
            },
        ),
    ];
    for v in BOTH {
        for (parameter, fields) in &cases {
            let reply = app.call(v, &fields.xml());
            assert_parameter_fault(&reply, v, parameter, &[], None);
        }
    }
}

#[test]
fn password_confirm_that_differs_is_confirm_mismatch_before_authentication() {
    let app = spawn_app();
    let mismatched = Fields {
        tail: format!("<passwordConfirm>{STRONG}#</passwordConfirm>"),
        ..Fields::valid()
    };
    let wrong_caller = Fields {
        caller_password: text("not the password at all"),
        ..mismatched.clone()
    };
    let empty_confirm = Fields {
        tail: "<passwordConfirm/>".into(),
        ..Fields::valid()
    };
    for v in BOTH {
        for fields in [&mismatched, &wrong_caller, &empty_confirm] {
            let reply = app.call(v, &fields.xml());
            assert_parameter_fault(
                &reply,
                v,
                "passwordConfirm",
                &["CONFIRM_MISMATCH"],
                Some(STRONG),
            );
            assert_eq!(
                detail_children(&reply),
                ["code", "message", "parameter", "violation"],
                "{}",
                reply.body
            );
        }
    }
}

#[test]
fn password_confirm_equal_to_password_succeeds() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let new_password = format!("{STRONG}-confirm{i}");
        let fields = Fields {
            password: text(&new_password),
            tail: format!("<passwordConfirm>{}</passwordConfirm>", esc(&new_password)),
            ..Fields::valid()
        };
        let reply = app.call(v, &fields.xml());
        assert!(reply.is_success(), "{}", reply.body);
    }
    // Compared after NFKC: a full-width confirmation of the same password matches.
    let fields = Fields {
        password: text("Fullwidth-Pass-4821"),
        tail: "<passwordConfirm>\u{FF26}ullwidth-Pass-4821</passwordConfirm>".into(),
        ..Fields::valid()
    };
    let reply = app.call(Soap::V11, &fields.xml());
    assert!(reply.is_success(), "{}", reply.body);
}

#[test]
fn parameters_are_checked_before_authentication() {
    let app = spawn_app();
    for v in BOTH {
        let fields = Fields {
            account_url: text("http://no-such-account.example.com"),
            caller_password: text("wrong"),
            user_id: None,
            ..Fields::valid()
        };
        let reply = app.call(v, &fields.xml());
        assert_parameter_fault(&reply, v, "userId", &[], None);
    }
}

// ---------------------------------------------------------- AuthenticationFailedFault

#[test]
fn every_authentication_failure_looks_the_same() {
    let app = spawn_app();
    for v in BOTH {
        let cases = [
            (
                "unknown account",
                Fields {
                    account_url: text("http://unknown.ispringlearn.com"),
                    ..Fields::valid()
                },
            ),
            (
                "unknown e-mail",
                Fields {
                    email: text("nobody@example.com"),
                    ..Fields::valid()
                },
            ),
            (
                "wrong password",
                Fields {
                    caller_password: text("Sales-Demo-Pass-0000"),
                    ..Fields::valid()
                },
            ),
            ("deactivated caller", Fields::new(FORMER, LEARNER.0, STRONG)),
        ];
        let mut bodies = Vec::new();
        for (why, fields) in cases {
            let reply = app.call(v, &fields.xml());
            assert_authentication_failed(&reply, v);
            assert_eq!(
                detail_children(&reply),
                ["code", "message"],
                "{why}: {}",
                reply.body
            );
            bodies.push((why, reply.body));
        }
        for (why, body) in &bodies[1..] {
            assert_eq!(body, &bodies[0].1, "{why} differs from {}", bodies[0].0);
        }
    }
}

#[test]
fn account_url_matches_ignoring_scheme_case_and_trailing_slash() {
    let app = spawn_app();
    let spellings = [
        "https://myaccount.ispringlearn.com",
        "HTTP://MyAccount.ISPRINGLEARN.com/",
        "myaccount.ispringlearn.com",
        "MYACCOUNT.ispringlearn.COM//",
    ];
    for v in BOTH {
        for (i, url) in spellings.iter().enumerate() {
            let fields = Fields {
                account_url: text(url),
                password: text(&format!("{STRONG}-url{v:?}{i}")),
                ..Fields::valid()
            };
            let reply = app.call(v, &fields.xml());
            assert!(reply.is_success(), "{url}: {}", reply.body);
        }
    }
}

#[test]
fn e_mail_matches_ignoring_case() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let fields = Fields {
            email: text(&SALES_ADMIN.1.to_uppercase()),
            password: text(&format!("{STRONG}-case{i}")),
            ..Fields::valid()
        };
        let reply = app.call(v, &fields.xml());
        assert!(reply.is_success(), "{}", reply.body);
        let fields = Fields {
            email: text("Sales.Admin@Example.COM"),
            password: text(&format!("{STRONG}-mixed{i}")),
            ..Fields::valid()
        };
        let reply = app.call(v, &fields.xml());
        assert!(reply.is_success(), "{}", reply.body);
    }
}

/// Median wall time of `n` calls of `op`.
fn median_time(app: &TestApp, n: usize, op: &str) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = std::time::Instant::now();
            let reply = app.call(Soap::V11, op);
            assert_authentication_failed(&reply, Soap::V11);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[test]
fn unknown_account_and_e_mail_take_as_long_as_a_wrong_password() {
    let app = spawn_app();
    let wrong_password = Fields {
        caller_password: text("Sales-Demo-Pass-0000"),
        ..Fields::valid()
    }
    .xml();
    let unknown_account = Fields {
        account_url: text("http://unknown.ispringlearn.com"),
        ..Fields::valid()
    }
    .xml();
    let unknown_email = Fields {
        email: text("nobody@example.com"),
        ..Fields::valid()
    }
    .xml();
    let wrong = median_time(&app, 5, &wrong_password);
    for (what, op) in [
        ("unknown account", &unknown_account),
        ("unknown e-mail", &unknown_email),
    ] {
        let took = median_time(&app, 5, op);
        // Both verify one argon2 hash; skipping it would be an order of magnitude faster.
        assert!(
            took * 3 > wrong,
            "{what} took {took:?}, a wrong password {wrong:?}"
        );
    }
}

#[test]
fn checks_run_in_contract_order_so_nothing_leaks_to_an_unauthenticated_caller() {
    let app = spawn_app();
    let wrong_password = "Sales-Demo-Pass-0000";
    for v in BOTH {
        // authentication before target lookup and permission
        for target in ["u-nobody", ENGINEER.0, FORMER.0, SSO.0] {
            let fields = Fields {
                caller_password: text(wrong_password),
                ..Fields::new(SALES_ADMIN, target, "weak")
            };
            assert_authentication_failed(&app.call(v, &fields.xml()), v);
        }
        // target lookup before permission
        let reply = app.call(v, &Fields::new(SALES_ADMIN, "u-nobody", STRONG).xml());
        assert_unknown_user(&reply, v);
        // permission before policy
        let reply = app.call(v, &Fields::new(SALES_ADMIN, ENGINEER.0, "weak").xml());
        assert_denied(&reply, v, "NOT_IN_SCOPE");
    }
}

#[test]
fn locked_out_caller_gets_authentication_failed_even_with_the_right_password() {
    // Contract §10: 10 failures of a pair within 15 minutes lock that pair.
    let app = spawn_app();
    let wrong = Fields {
        caller_password: text("Sales-Demo-Pass-0000"),
        ..Fields::valid()
    };
    for _ in 0..10 {
        assert_authentication_failed(&app.call(Soap::V11, &wrong.xml()), Soap::V11);
    }
    for v in BOTH {
        let reply = app.call(v, &Fields::valid().xml());
        assert_authentication_failed(&reply, v);
    }
}

// ------------------------------------------------------------------ UnknownUserFault

/// The demo directory plus a second account: an owner with the demo owner's e-mail, and `u-other`.
fn two_accounts_json() -> String {
    let mut directory: serde_json::Value =
        serde_json::from_str(soap_passwd::demo::DEMO_JSON).expect("demo json");
    let other = serde_json::json!({
        "url": "http://other.ispringlearn.com",
        "name": "Other Company",
        "departments": [{"id": "o-root", "name": "Other", "children": []}],
        "users": [
            {"id": "o-owner", "email": "owner@example.com", "password": "Other-Owner-Pass-5150",
             "role": "owner", "department": "o-root"},
            {"id": "u-other", "email": "other@example.com", "password": "Other-User-Pass-6262",
             "role": "user", "department": "o-root"}
        ]
    });
    directory["accounts"]
        .as_array_mut()
        .expect("accounts")
        .push(other);
    directory.to_string()
}

#[test]
fn an_unknown_user_id_is_an_unknown_user_fault() {
    let app = spawn_app();
    for v in BOTH {
        for user_id in ["u-nobody", "u-learner-2"] {
            let reply = app.call(v, &Fields::new(OWNER, user_id, STRONG).xml());
            assert_unknown_user(&reply, v);
            assert_eq!(
                detail_children(&reply),
                ["code", "message"],
                "{}",
                reply.body
            );
        }
    }
}

#[test]
fn a_user_of_another_account_is_unknown() {
    let app = spawn_app_with(&two_accounts_json(), |_| {});
    for v in BOTH {
        // The demo account's owner names the other account's user.
        let reply = app.call(v, &Fields::new(OWNER, "u-other", STRONG).xml());
        assert_unknown_user(&reply, v);
        // The other account's owner (same e-mail, other account) names a demo user.
        let fields = Fields {
            account_url: text("http://other.ispringlearn.com"),
            ..Fields::new(
                ("o-owner", "owner@example.com", "Other-Owner-Pass-5150"),
                LEARNER.0,
                STRONG,
            )
        };
        let reply = app.call(v, &fields.xml());
        assert_unknown_user(&reply, v);
    }
    // Both really exist in their own account.
    let fields = Fields {
        account_url: text("http://other.ispringlearn.com"),
        ..Fields::new(
            ("o-owner", "owner@example.com", "Other-Owner-Pass-5150"),
            "u-other",
            STRONG,
        )
    };
    assert!(app.call(Soap::V11, &fields.xml()).is_success());
}

// ------------------------------------------------------------- PermissionDeniedFault

#[test]
fn a_target_outside_the_callers_departments_is_permission_denied_not_in_scope() {
    let app = spawn_app();
    for v in BOTH {
        let reply = app.change(v, SALES_ADMIN, ENGINEER.0, STRONG);
        assert_denied(&reply, v, "NOT_IN_SCOPE");
        assert_eq!(
            detail_children(&reply),
            ["code", "message", "reason"],
            "{}",
            reply.body
        );
        assert!(!reply.text("message").unwrap_or_default().is_empty());
    }
}

// ------------------------------------------------------------------- ServerBusyFault

#[test]
fn load_beyond_the_hashing_slots_is_shed_with_server_busy_and_retry_after() {
    let app = Arc::new(spawn_app_with(soap_passwd::demo::DEMO_JSON, |s| {
        s.hash_slots = 1;
        s.hash_wait = Duration::from_millis(5);
    }));
    let targets = [
        LEARNER.0,
        LEARNER2.0,
        ENGINEER.0,
        TRAINER.0,
        HELP.0,
        SALES_ADMIN.0,
        EMEA_ADMIN.0,
        ENG_ADMIN.0,
    ];
    for v in BOTH {
        let mut busy = Vec::new();
        for round in 0..5 {
            let barrier = Arc::new(Barrier::new(targets.len()));
            let threads: Vec<_> = targets
                .iter()
                .map(|&target| {
                    let (app, barrier) = (app.clone(), barrier.clone());
                    let new_password = format!("{STRONG}-busy-{v:?}-{round}");
                    std::thread::spawn(move || {
                        barrier.wait();
                        app.change(v, ADMIN, target, &new_password)
                    })
                })
                .collect();
            for t in threads {
                let reply = t.join().expect("client thread");
                if reply.is_success() {
                    continue;
                }
                busy.push(reply);
            }
            if !busy.is_empty() {
                break;
            }
        }
        assert!(!busy.is_empty(), "no request was shed in {v:?}");
        let (code, content_type) = match v {
            Soap::V11 => ("SOAP-ENV:Server", "text/xml"),
            Soap::V12 => ("env:Receiver", "application/soap+xml"),
        };
        for reply in busy {
            assert_eq!(reply.status, 503, "{}", reply.body);
            assert!(reply.content_type.starts_with(content_type));
            assert_eq!(reply.fault_code().as_deref(), Some(code), "{}", reply.body);
            assert_eq!(reply.fault_string().as_deref(), Some("Server busy"));
            assert_eq!(reply.detail_element().as_deref(), Some("ServerBusyFault"));
            assert_eq!(reply.text("code").as_deref(), Some("SERVER_BUSY"));
            assert!(!reply.text("message").unwrap_or_default().is_empty());
            let retry_after = reply
                .headers
                .get("retry-after")
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse::<u32>().ok());
            assert!(
                retry_after.is_some_and(|s| s >= 1),
                "Retry-After: {:?}",
                reply.headers.get("retry-after")
            );
        }
    }
}

// ------------------------------------------------------------ Server / Receiver fault

#[test]
fn an_unexpected_failure_is_a_server_fault_that_says_nothing_internal() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let new_password = format!("{STRONG}-locked{i}");
        // A table the sign-in reads is away: its query fails, as no input can make it.
        app.db().exec(
            "ALTER TABLE password_history RENAME TO password_history_away",
            &[],
        );
        let reply = app.change(v, SALES_ADMIN, LEARNER.0, &new_password);
        app.db().exec(
            "ALTER TABLE password_history_away RENAME TO password_history",
            &[],
        );

        let code = match v {
            Soap::V11 => "Server",
            Soap::V12 => "Receiver",
        };
        assert_bare_fault(&reply, v, 500, code);
        assert_eq!(
            reply.fault_string().as_deref(),
            Some("Internal error"),
            "{}",
            reply.body
        );
        for internal in [
            "password_history",
            "relation",
            "table",
            "sqlite",
            "postgres",
            "database",
            "SQL",
        ] {
            assert!(
                !reply.body.to_lowercase().contains(&internal.to_lowercase()),
                "{}",
                reply.body
            );
        }

        let reply = app.change(v, SALES_ADMIN, LEARNER.0, &new_password);
        assert!(reply.is_success(), "{}", reply.body);
    }
    assert_eq!(app.audit_rows("INTERNAL", 2), 2);
}

// -------------------------------------------------------------------------- audit trail

#[test]
fn a_successful_change_writes_an_audit_row_and_a_password_changed_event() {
    let app = spawn_app();
    for (i, v) in BOTH.into_iter().enumerate() {
        let reply = app.change(v, SALES_ADMIN, LEARNER.0, &format!("{STRONG}-audit{i}"));
        assert!(reply.is_success(), "{}", reply.body);
        let request_id = request_id(&reply);
        let db = app.db();
        let (caller, target, outcome, account_url, addr): (String, String, String, String, String) = db
            .query_row(
                "SELECT c.ext_id, t.ext_id, a.outcome, a.account_url, a.client_addr
                 FROM audit_log a JOIN users c ON c.id = a.caller_id JOIN users t ON t.id = a.target_id
                 WHERE a.request_id = ?1",
                [&request_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .expect("audit row of the change");
        assert_eq!(
            (
                caller.as_str(),
                target.as_str(),
                outcome.as_str(),
                account_url.as_str(),
                addr.as_str()
            ),
            (SALES_ADMIN.0, LEARNER.0, "OK", ACCOUNT, "127.0.0.1")
        );
        let (kind, user, version): (String, String, i64) = db
            .query_row(
                "SELECT e.kind, u.ext_id, e.credential_version
                 FROM events e JOIN users u ON u.id = e.user_id WHERE e.request_id = ?1",
                [&request_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("event of the change");
        assert_eq!(
            (kind.as_str(), user.as_str(), version),
            ("password_changed", LEARNER.0, i as i64 + 2)
        );
    }
    let events: i64 = app
        .db()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 2);
}

#[test]
/// Every attempt is audited and none writes an event: an authenticated one in a row of
/// its own, one refused before authentication counted into its client's row of the
/// minute (contract §10, "Precisions").
fn every_failed_attempt_is_audited_and_writes_no_event() {
    let app = spawn_app();
    let attempts = [
        (
            "WRONG_PARAMETERS",
            Some("userId"),
            Fields {
                user_id: None,
                ..Fields::valid()
            },
        ),
        (
            "AUTHENTICATION_FAILED",
            None,
            Fields {
                caller_password: text("Sales-Demo-Pass-0000"),
                ..Fields::valid()
            },
        ),
        (
            "UNKNOWN_USER",
            None,
            Fields::new(SALES_ADMIN, "u-nobody", STRONG),
        ),
        (
            "PERMISSION_DENIED",
            Some("NOT_IN_SCOPE"),
            Fields::new(SALES_ADMIN, ENGINEER.0, STRONG),
        ),
        (
            "WRONG_PARAMETERS",
            Some("password:TOO_SHORT,CONTAINS_EMAIL,TOO_COMMON"),
            Fields::new(SALES_ADMIN, LEARNER.0, "learner"),
        ),
    ];
    let mut expected = std::collections::BTreeMap::<&str, i64>::new();
    let mut first_refusal = None;
    for v in BOTH {
        for (i, (outcome, detail, fields)) in attempts.iter().enumerate() {
            let reply = app.call(v, &fields.xml());
            assert_ne!(reply.status, 200, "{}", reply.body);
            if i == 0 {
                // Refused before authentication: counted into one row.
                let first = first_refusal.get_or_insert_with(|| request_id(&reply));
                let calls = if v == Soap::V11 { 1 } else { 2 };
                let condition = "outcome = 'WRONG_PARAMETERS' AND detail = 'userId'";
                assert_eq!(app.audit_calls_where(condition, calls), calls);
                let rows = app.audit_rows_where(condition, 1);
                let first_id: String = app
                    .db()
                    .query_row(
                        &format!("SELECT min(request_id) FROM audit_log WHERE {condition}"),
                        [],
                        |r| r.get(0),
                    )
                    .expect("the counted row");
                // One row, unless the two calls fell either side of a minute.
                assert!(rows == 1 || (rows == 2 && calls == 2), "{rows} rows");
                if rows == 1 {
                    assert_eq!(&first_id, first, "the row names its minute's first call");
                }
                continue;
            }
            *expected.entry(outcome).or_default() += 1;
            let want = expected[outcome];
            assert_eq!(
                app.audit_rows_where(
                    &format!("outcome = '{outcome}' AND aggregate_key IS NULL"),
                    want
                ),
                want,
                "{outcome}"
            );
            let request_id = request_id(&reply);
            let row: (String, Option<String>) = app
                .db()
                .query_row(
                    "SELECT outcome, detail FROM audit_log WHERE request_id = ?1",
                    [&request_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("audit row of the attempt");
            assert_eq!((row.0.as_str(), row.1.as_deref()), (*outcome, *detail));
        }
    }
    let events: i64 = app
        .db()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events, 0);
    let changed_users: i64 = app
        .db()
        .query_row(
            "SELECT count(*) FROM users WHERE credential_version <> 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(changed_users, 0);
}
