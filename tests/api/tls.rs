//! Contract §16: HTTPS on `--bind` with `--tls-cert`/`--tls-key`. A test CA, an
//! intermediate and a server certificate are generated here (rcgen); the real binary
//! serves them, and clients that trust only the root reach every front door. A bad or
//! mismatched file is one line and a non-zero exit; a client that is not TLS, or never
//! finishes its handshake, is dropped and the service stays up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use crate::harness::{Log, Served, binary};
use crate::helpers::*;

/// The files of a test PKI: a root, an intermediate it signed, and a server
/// certificate for `localhost` and 127.0.0.1 the intermediate signed.
pub struct Pki {
    /// The root alone: what clients trust.
    pub root_pem: String,
    pub root_file: PathBuf,
    /// The server's chain, leaf then intermediate.
    pub chain: PathBuf,
    pub key: PathBuf,
    /// A key of the same kind that belongs to no certificate here.
    pub other_key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

pub fn pki(dir: &Path) -> Pki {
    let root = CertifiedIssuer::self_signed(
        ca_params("soap-passwd test root"),
        KeyPair::generate().expect("root key"),
    )
    .expect("root");
    let intermediate = CertifiedIssuer::signed_by(
        ca_params("soap-passwd test intermediate"),
        KeyPair::generate().expect("intermediate key"),
        &root,
    )
    .expect("intermediate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &intermediate)
        .expect("leaf");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    Pki {
        root_pem: root.pem(),
        root_file: write("root.pem", &root.pem()),
        chain: write(
            "chain.pem",
            &format!("{}{}", leaf.pem(), intermediate.pem()),
        ),
        key: write("key.pem", &leaf_key.serialize_pem()),
        other_key: write(
            "other-key.pem",
            &KeyPair::generate().expect("key").serialize_pem(),
        ),
    }
}

/// A client that trusts the test root only.
pub fn https_client(pki: &Pki) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(pki.root_pem.as_bytes()).expect("root certificate"),
        )
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// `serve --demo` over HTTPS with `extra` flags.
pub fn serve_tls(db: &TestDb, pki: &Pki, extra: &[&str]) -> Served {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--demo", "--bind", "127.0.0.1:0", "--db"])
        .arg(db.arg())
        .arg("--tls-cert")
        .arg(&pki.chain)
        .arg("--tls-key")
        .arg(&pki.key)
        .args(extra)
        .env("RUST_LOG", "info");
    Served::spawn(cmd, Log::Captured, "tls").unwrap_or_else(|e| panic!("{e}"))
}

fn change_request(new_password: &str) -> String {
    Soap::V11.envelope(&format!(
        "<UpdateUserPasswordRequest xmlns=\"{API_NS}\"><credentials><accountUrl>{ACCOUNT}</accountUrl>\
         <email>{}</email><password>{}</password></credentials>\
         <userId>{}</userId><password>{new_password}</password></UpdateUserPasswordRequest>",
        SALES_ADMIN.1, SALES_ADMIN.2, LEARNER.0
    ))
}

#[test]
fn every_front_door_answers_over_https_and_the_wsdl_says_https() {
    let db = TestDb::fresh();
    let pki = pki(db.dir());
    let mut served = serve_tls(&db, &pki, &[]);
    let base = format!("https://localhost:{}", served.port);
    let client = https_client(&pki);

    // The start-up line and the WSDL's address say https.
    let wsdl = client
        .get(format!("{base}/soap?wsdl"))
        .send()
        .and_then(|r| r.text())
        .expect("WSDL over HTTPS");
    assert!(
        wsdl.contains(&format!("location=\"{base}/soap\"")),
        "soap:address is not {base}/soap: {wsdl}"
    );

    // SOAP: a change succeeds, a wrong password is its typed fault.
    let reply = client
        .post(format!("{base}/soap"))
        .header("Content-Type", Soap::V11.content_type())
        .body(change_request("Tls-Changed-Pass-4471"))
        .send()
        .expect("SOAP over HTTPS");
    let status = reply.status();
    let body = reply.text().expect("body");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<success>true</success>"), "{body}");

    // REST: a reset link returned is an https one on this host.
    let reply = client
        .post(format!("{base}/api/password-resets"))
        .basic_auth(ADMIN.1, Some(ADMIN.2))
        .header("X-Account-Url", ACCOUNT)
        .header("Content-Type", "application/json")
        .body(format!(
            r#"{{"userIds": ["{}"], "delivery": "return"}}"#,
            ENGINEER.0
        ))
        .send()
        .expect("REST over HTTPS");
    assert_eq!(reply.status(), 200);
    let json: serde_json::Value = serde_json::from_str(&reply.text().expect("body")).expect("JSON");
    let link = json["items"][0]["link"].as_str().unwrap_or_default();
    assert!(link.starts_with(&format!("{base}/reset/")), "{json}");

    // The reset page over HTTPS sets its cookie Secure.
    let page = client.get(link).send().expect("reset page");
    assert_eq!(page.status(), 200);
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");

    // Health, and TLS 1.2 as well as 1.3.
    let tls12 = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.root_pem.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    for client in [&client, &tls12] {
        let ready = client
            .get(format!("{base}/health/ready"))
            .send()
            .expect("ready");
        assert_eq!(ready.status(), 200);
    }

    // A client that does not trust the root is refused by its own check.
    let untrusting = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let err = untrusting
        .get(format!("{base}/health"))
        .send()
        .expect_err("an unknown issuer must not be trusted");
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // Plain HTTP to the TLS port gets no HTTP answer, and the service serves on.
    let plain = reqwest::blocking::get(format!("http://127.0.0.1:{}/health", served.port));
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");
    let ready = client.get(format!("{base}/health")).send().expect("health");
    assert_eq!(ready.status(), 200);

    let printed = served.kill();
    assert!(
        printed.stdout.contains(&format!(
            "listening on https://127.0.0.1:{}/soap",
            served.port
        )),
        "{}",
        printed.stdout
    );
    assert!(
        printed.stderr.contains("TLS: serving HTTPS with"),
        "{}",
        printed.stderr
    );
}

#[test]
fn a_stalled_handshake_is_dropped_and_counted_against_its_address() {
    let db = TestDb::fresh();
    let pki = pki(db.dir());
    let served = serve_tls(&db, &pki, &["--max-connections-per-address", "2"]);
    let client = https_client(&pki);
    let base = format!("https://localhost:{}", served.port);
    let connect = || {
        let stream = TcpStream::connect(served.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
    };
    // Two connections that never start their handshake hold this address's share.
    let mut held = [connect(), connect()];
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = third.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the third connection was not shut");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The held ones are dropped by the head timeout (5 s), unanswered.
    for stream in &mut held {
        let started = Instant::now();
        let n = stream.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "a stalled handshake was held {:?}",
            started.elapsed()
        );
    }
    // Garbage instead of a ClientHello: dropped, and the service serves on.
    let mut junk = connect();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = junk.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "{answer:?}"
    );
    let ok = client.get(format!("{base}/health")).send().expect("health");
    assert_eq!(ok.status(), 200);
}

/// `serve --tls-cert CERT --tls-key KEY`: must fail before listening, with `expect` in
/// its one line on stderr.
fn refused(db: &TestDb, cert: &Path, key: &Path, expect: &str) {
    let out = Command::new(binary())
        .args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(db.arg())
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .output()
        .expect("run soap-passwd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(stderr.contains(expect), "{expect:?} not in {stderr}");
    assert!(
        !stderr.contains("-----"),
        "a file's text in the error: {stderr}"
    );
}

#[test]
fn a_bad_or_mismatched_certificate_or_key_is_one_line_and_no_start() {
    let db = TestDb::fresh();
    let pki = pki(db.dir());
    let dir = db.dir();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    };
    let missing = dir.join("missing.pem");
    let empty = file("empty.pem", "");
    let not_pem = file("not.pem", "this is not a certificate\n");
    let broken = file(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    let chain = std::fs::read_to_string(&pki.chain).expect("chain");
    let key = std::fs::read_to_string(&pki.key).expect("key");

    let shown = |p: &Path| p.display().to_string();
    refused(
        &db,
        &missing,
        &pki.key,
        &format!("--tls-cert {}: cannot read it", shown(&missing)),
    );
    refused(
        &db,
        &pki.chain,
        &missing,
        &format!("--tls-key {}: cannot read it", shown(&missing)),
    );
    for no_cert in [&empty, &not_pem, &pki.key] {
        refused(
            &db,
            no_cert,
            &pki.key,
            &format!("--tls-cert {}: no PEM certificate in it", shown(no_cert)),
        );
    }
    refused(
        &db,
        &broken,
        &pki.key,
        &format!("--tls-cert {}: not a valid PEM certificate", shown(&broken)),
    );
    for no_key in [&empty, &not_pem, &pki.chain] {
        refused(
            &db,
            &pki.chain,
            no_key,
            &format!("--tls-key {}: no PEM private key in it", shown(no_key)),
        );
    }
    // The two swapped in one file each way still find their parts.
    let both = file("both.pem", &format!("{key}{chain}"));
    let mut served = Served::spawn(
        {
            let mut cmd = Command::new(binary());
            cmd.args(["serve", "--bind", "127.0.0.1:0", "--db"])
                .arg(db.arg())
                .arg("--tls-cert")
                .arg(&both)
                .arg("--tls-key")
                .arg(&both);
            cmd
        },
        Log::Captured,
        "one file",
    )
    .expect("a file with the key and the chain serves");
    served.kill();
    refused(
        &db,
        &pki.chain,
        &pki.other_key,
        &format!(
            "--tls-key {} does not belong to the certificate in --tls-cert {}",
            shown(&pki.other_key),
            shown(&pki.chain)
        ),
    );

    // One without the other: clap's usage error, exit 2, naming the missing flag.
    let out = Command::new(binary())
        .args(["serve", "--bind", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.chain)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

/// zeep (Python) over HTTPS, trusting only the test root: it loads the WSDL, follows
/// its https address and gets a result and a typed fault. Runs where
/// `SOAP_PASSWD_TEST_PYTHON` names a Python with zeep (`.ci/test` sets it to its venv).
#[test]
fn zeep_calls_the_service_over_https() {
    let Ok(python) = std::env::var("SOAP_PASSWD_TEST_PYTHON") else {
        eprintln!("SOAP_PASSWD_TEST_PYTHON unset: zeep over HTTPS not run here");
        return;
    };
    let db = TestDb::fresh();
    let pki = pki(db.dir());
    let served = serve_tls(&db, &pki, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/zeep_https.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("https://localhost:{}/soap", served.port))
        .env("REQUESTS_CA_BUNDLE", &pki.root_file)
        .output()
        .expect("run zeep_https.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("zeep over HTTPS: 4 checks passed"),
        "{stdout}"
    );
}
