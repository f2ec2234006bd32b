//! The mail sender (contract §14): delivers the outbox — the `events` table — as plain-text
//! mails through an SMTP server, and acknowledges an event only once the server accepted
//! its mail. A refused or unreachable server is retried with backoff; since the events stay
//! in the database until acknowledged, nothing is lost across restarts, and a sender that
//! dies holding events leaves them due again when its claim ends.
//!
//! The one event acknowledged without a mail is a reset request whose link expired before
//! it could be sent: a mail with a dead link helps no one (the requester can issue another).

mod message;

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;

pub use message::{Unmailable, compose};

use crate::domain::records::Claimed;
use crate::store::Store;

/// How the sender reaches its SMTP server: `--smtp-url`, `--smtp-from` and the longest
/// wait between retries. The URL may hold a password: it is kept secret and never shown.
#[derive(Clone)]
pub struct MailSettings {
    url: SecretString,
    from: Mailbox,
    retry_max: Duration,
}

/// Why the mail settings are unusable (one line for the command line).
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error(
        "--smtp-url must be smtp://HOST[:PORT] or smtps://HOST[:PORT], optionally with \
         USER:PASSWORD@ and ?tls=required or ?tls=opportunistic ({0})"
    )]
    Url(String),
    #[error(
        "--smtp-from must be an address such as noreply@example.com or 'Name <noreply@example.com>' ({0})"
    )]
    From(String),
}

impl MailSettings {
    pub fn new(url: &str, from: &str, retry_max: Duration) -> Result<Self, MailConfigError> {
        // Checked now, so that a typo stops `serve` at once rather than every send.
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailConfigError::Url(e.to_string()))?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| MailConfigError::From(e.to_string()))?;
        Ok(MailSettings {
            url: SecretString::from(url.to_string()),
            from,
            retry_max: retry_max.max(Duration::from_secs(1)),
        })
    }

    /// The server as a log line may name it: scheme, host and port, no credentials.
    fn server(&self) -> String {
        let url = self.url.expose_secret();
        let (scheme, rest) = url.split_once("://").unwrap_or(("smtp", url));
        let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let host = host.split(['/', '?']).next().unwrap_or(host);
        format!("{scheme}://{host}")
    }
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("server", &self.server())
            .field("from", &self.from.to_string())
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

/// Events taken per round, and mails sent at once (over the transport's pooled connections).
const BATCH: usize = 64;
const CONCURRENCY: usize = 8;
/// How long a sender's claim on the events it took lasts: past every SMTP timeout, so a
/// living sender is never overtaken, and short enough that a dead one's events soon are
/// due again.
const LEASE: Duration = Duration::from_secs(120);
/// Each SMTP command's timeout.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the outbox is looked at when it is empty (events written by other processes
/// on the same database are seen as soon).
const POLL: Duration = Duration::from_millis(500);
/// A mail the server refused for good (5xx) is tried again after 1 min, doubling per
/// attempt up to this (the address may be fixed, the mailbox created).
const REFUSED_MAX: Duration = Duration::from_secs(6 * 3600);

/// How often a continuing outage is logged again.
const OUTAGE_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The running sender; [`Mailer::stop`] ends it.
pub struct Mailer {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Mailer {
    /// Starts the sender on the current tokio runtime.
    pub fn start(store: Store, settings: MailSettings) -> Result<Mailer, MailConfigError> {
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::from_url(settings.url.expose_secret())
                .map_err(|e| MailConfigError::Url(e.to_string()))?
                .timeout(Some(SMTP_TIMEOUT))
                .build();
        log::info!(
            "mail: sending events to their users through {} as {}",
            settings.server(),
            settings.from
        );
        let (stop, stopped) = watch::channel(false);
        let sender = Sender {
            store,
            transport,
            settings,
        };
        let task = tokio::spawn(sender.run(stopped));
        Ok(Mailer { stop, task })
    }

    /// Stops after the mails under way (each bounded by the SMTP timeout), waiting at most
    /// `within`; events it could not finish are due again when their claim ends.
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(within, self.task).await.is_err() {
            log::warn!("mail: the sender did not stop in time; its events are sent later");
        }
    }
}

/// What became of one claimed event.
enum Delivery {
    Sent,
    /// Acknowledged without a mail (a reset link that expired first).
    Dropped(Unmailable),
    /// The server refused this mail for good, or it cannot be made: tried again later.
    Refused(String),
    /// The server could not be reached or refused for now: the whole sender backs off.
    Unreachable(String),
}

struct Sender {
    store: Store,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    settings: MailSettings,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `first` doubled `attempts` times, at most `cap`.
fn backoff(first: Duration, attempts: u32, cap: Duration) -> Duration {
    first
        .checked_mul(2u32.saturating_pow(attempts.min(30)))
        .map_or(cap, |d| d.min(cap))
}

impl Sender {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        // Consecutive rounds in which the server could not be reached, and when that
        // was last said.
        let mut outage: u32 = 0;
        let mut warned = tokio::time::Instant::now();
        while !*stopped.borrow() {
            let pause = match self.round(outage).await {
                Ok(Round::Idle) => POLL,
                Ok(Round::Sent) => {
                    if outage > 0 {
                        log::info!("mail: {} accepts mail again", self.settings.server());
                        outage = 0;
                    }
                    Duration::ZERO
                }
                Ok(Round::Unreachable(why)) => {
                    let wait = backoff(Duration::from_secs(1), outage, self.settings.retry_max);
                    // One warning at the start of an outage, then one a minute at most.
                    if outage == 0 || warned.elapsed() >= OUTAGE_WARNING_EVERY {
                        warned = tokio::time::Instant::now();
                        log::warn!(
                            "mail: cannot send through {} ({why}); the events wait, \
                             retrying in {}",
                            self.settings.server(),
                            humantime::format_duration(wait)
                        );
                    }
                    outage = outage.saturating_add(1);
                    wait
                }
                Err(e) => {
                    log::warn!("mail: the outbox could not be read: {e}");
                    backoff(Duration::from_secs(1), 3, self.settings.retry_max)
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stopped.changed() => {}
                }
            }
        }
    }

    /// Claims the due events (one only while the server is out, as a probe) and sends them.
    async fn round(&self, outage: u32) -> Result<Round, crate::store::StoreError> {
        let now = now_ms();
        let limit = if outage > 0 { 1 } else { BATCH };
        let claimed = self
            .store
            .claim_mail(now, now.saturating_add(millis(LEASE)), limit)
            .await?;
        if claimed.is_empty() {
            return Ok(Round::Idle);
        }
        let retry_at = now_ms().saturating_add(millis(backoff(
            Duration::from_secs(1),
            outage,
            self.settings.retry_max,
        )));
        let outcomes: Vec<(Claimed, Delivery)> = futures_util::stream::iter(claimed)
            .map(|c| async move {
                let d = self.deliver(&c).await;
                (c, d)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut unreachable = None;
        for (c, delivery) in outcomes {
            let e = &c.event;
            match delivery {
                Delivery::Sent => {
                    crate::metrics::mail_sent();
                    self.store.ack_mailed(e.id).await?;
                    log::info!(
                        "mail: event {} ({}) sent to user {}",
                        e.id,
                        e.kind,
                        e.user_id
                    );
                }
                Delivery::Dropped(why) => {
                    self.store.ack_mailed(e.id).await?;
                    log::info!(
                        "mail: event {} ({}) of user {} acknowledged without a mail: {why}",
                        e.id,
                        e.kind,
                        e.user_id
                    );
                }
                Delivery::Refused(why) => {
                    crate::metrics::mail_failed("refused");
                    let attempts = u32::try_from(c.attempts).unwrap_or(u32::MAX);
                    let wait = backoff(Duration::from_secs(60), attempts, REFUSED_MAX);
                    self.store
                        .defer_mail(e.id, now_ms().saturating_add(millis(wait)))
                        .await?;
                    log::warn!(
                        "mail: event {} ({}) of user {} not sent: {why}; trying again in {}",
                        e.id,
                        e.kind,
                        e.user_id,
                        humantime::format_duration(wait)
                    );
                }
                Delivery::Unreachable(why) => {
                    crate::metrics::mail_failed("unreachable");
                    self.store.defer_mail(e.id, retry_at).await?;
                    unreachable = Some(why);
                }
            }
        }
        Ok(unreachable.map_or(Round::Sent, Round::Unreachable))
    }

    async fn deliver(&self, c: &Claimed) -> Delivery {
        let mail = match compose(&c.event, &self.settings.from, chrono::Utc::now()) {
            Ok(mail) => mail,
            Err(stale @ Unmailable::Stale(_)) => return Delivery::Dropped(stale),
            Err(e) => return Delivery::Refused(e.to_string()),
        };
        match self.transport.send(mail).await {
            Ok(_) => Delivery::Sent,
            Err(e) if e.is_permanent() => {
                Delivery::Refused(format!("the SMTP server refused it: {e}"))
            }
            Err(e) => Delivery::Unreachable(e.to_string()),
        }
    }
}

/// What one round of the sender did.
enum Round {
    Idle,
    Sent,
    Unreachable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let s = Duration::from_secs;
        let caps: Vec<_> = (0..8).map(|n| backoff(s(1), n, s(30))).collect();
        assert_eq!(caps, [s(1), s(2), s(4), s(8), s(16), s(30), s(30), s(30)]);
        assert_eq!(backoff(s(60), u32::MAX, REFUSED_MAX), REFUSED_MAX);
    }

    #[test]
    fn settings_never_show_the_smtp_password() {
        let m = MailSettings::new(
            "smtps://mailer:s3cr3t-pw@relay.example.com:465",
            "soap-passwd <noreply@example.com>",
            Duration::from_secs(300),
        )
        .unwrap();
        let shown = format!("{m:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("smtps://relay.example.com:465"), "{shown}");
    }

    #[test]
    fn bad_settings_are_refused_with_the_flag_named() {
        let bad_url = MailSettings::new("http://relay", "a@b.c", Duration::from_secs(1));
        assert!(bad_url.unwrap_err().to_string().starts_with("--smtp-url"));
        let bad_from =
            MailSettings::new("smtp://relay:25", "not an address", Duration::from_secs(1));
        assert!(bad_from.unwrap_err().to_string().starts_with("--smtp-from"));
    }
}
