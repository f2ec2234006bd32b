//! argon2id hash and verify at the configured (OWASP) parameters: the floor every
//! successful change pays (`cargo bench --bench argon2`).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use soap_passwd::crypto::{HashParams, hash_blocking, verify_blocking};
use soap_passwd::domain::Password;

fn argon2(c: &mut Criterion) {
    let params = HashParams::default();
    let password = Password::normalise("Vq7#Lp2!xZr9Mw4k");
    let phc = hash_blocking(params, &password).unwrap_or_default();
    let mut group = c.benchmark_group("argon2id m=19456 t=2 p=1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| hash_blocking(params, black_box(&password)))
    });
    group.bench_function("verify", |b| {
        b.iter(|| verify_blocking(black_box(&phc), &password))
    });
    group.finish();
}

criterion_group!(benches, argon2);
criterion_main!(benches);
