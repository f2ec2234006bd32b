//! The load generator: HTTP/1.1 with keep-alive, closed and open loop, on one thread.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------------------------------
// The load generator: HTTP/1.1 with keep-alive, closed and open loop, on one thread
// ---------------------------------------------------------------------------------------

/// One answer, read whole.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// The server will close the connection after this answer.
    pub(crate) close: bool,
}

/// A keep-alive connection to the server.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: Vec<u8>,
    /// An answer has come back on it: the server may have closed it while it was idle.
    pub(crate) used: bool,
}

impl Conn {
    pub(crate) async fn open(server: SocketAddr, from: Option<IpAddr>) -> io::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = from {
            // Every 127/8 address is local on Linux: the server sees a second client.
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
            used: false,
        })
    }

    pub(crate) async fn exchange(&mut self, request: &[u8]) -> io::Result<Reply> {
        self.buf.clear();
        self.stream.write_all(request).await?;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = parse_head(&self.buf[..end])?;
                let total = end + 4 + head.content_length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                self.used = true;
                return Ok(Reply {
                    status: head.status,
                    body: self.buf[end + 4..total].to_vec(),
                    close: head.close,
                });
            }
            self.read_more().await?;
        }
    }

    pub(crate) async fn read_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// Sends `request` on `conn` (or a new connection), retrying once on a fresh connection
/// when a reused one turns out to be closed: an idle keep-alive connection the server
/// timed out is the client's business, not an error of the service.
pub(crate) async fn send(
    conn: Option<Conn>,
    server: SocketAddr,
    from: Option<IpAddr>,
    request: &[u8],
) -> io::Result<(Conn, Reply)> {
    if let Some(mut conn) = conn {
        match conn.exchange(request).await {
            Ok(reply) => return Ok((conn, reply)),
            Err(_) if conn.used && conn.buf.is_empty() => {}
            Err(e) => return Err(e),
        }
    }
    let mut conn = Conn::open(server, from).await?;
    let reply = conn.exchange(request).await?;
    Ok((conn, reply))
}

pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) content_length: usize,
    pub(crate) close: bool,
}

pub(crate) fn parse_head(head: &[u8]) -> io::Result<Head> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let text = std::str::from_utf8(head).map_err(|_| bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let mut content_length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(bad("chunked answers are not expected"));
        }
    }
    Ok(Head {
        status,
        content_length: content_length.ok_or_else(|| bad("no Content-Length"))?,
        close,
    })
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[derive(Clone, Copy)]
pub(crate) struct Timing {
    /// Sent but not counted, so the server's pools and caches are warm.
    pub(crate) warmup: Duration,
    pub(crate) run: Duration,
}

/// Latencies (ns) and counts of one measurement.
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) ok: Vec<u64>,
    pub(crate) shed: Vec<u64>,
    pub(crate) other: u64,
    pub(crate) io_errors: u64,
    /// Requests still unanswered when an open-loop run gave up on them.
    pub(crate) unanswered: u64,
    pub(crate) first_other: Option<String>,
    pub(crate) seconds: f64,
}

impl Stats {
    pub(crate) fn record(&mut self, outcome: Outcome, latency: Duration, reply: &Reply) {
        let ns = latency.as_nanos() as u64;
        match outcome {
            Outcome::Ok => self.ok.push(ns),
            Outcome::Shed => self.shed.push(ns),
            Outcome::Other => {
                self.other += 1;
                if self.first_other.is_none() {
                    self.first_other = Some(describe_reply(reply));
                }
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Stats) {
        self.ok.extend(other.ok);
        self.shed.extend(other.shed);
        self.other += other.other;
        self.io_errors += other.io_errors;
        self.unanswered += other.unanswered;
        if self.first_other.is_none() {
            self.first_other = other.first_other;
        }
        self.seconds = self.seconds.max(other.seconds);
    }

    pub(crate) fn finish(&mut self) {
        self.ok.sort_unstable();
        self.shed.sort_unstable();
    }

    pub(crate) fn ok_rate(&self) -> f64 {
        self.ok.len() as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    pub(crate) fn sent(&self) -> usize {
        self.ok.len() + self.shed.len() + (self.other + self.io_errors + self.unanswered) as usize
    }

    pub(crate) fn ok_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.ok, p)
    }

    pub(crate) fn shed_percentile(&self, p: f64) -> Option<Duration> {
        percentile(&self.shed, p)
    }

    /// No answer other than the expected one or a 503.
    pub(crate) fn clean(&self) -> bool {
        self.other + self.io_errors + self.unanswered == 0
    }

    /// Sheds and errors, as a suffix for a result cell.
    pub(crate) fn problems(&self) -> String {
        let mut s = String::new();
        if !self.shed.is_empty() {
            s.push_str(&format!("; {} shed (503)", self.shed.len()));
        }
        if self.other > 0 {
            s.push_str(&format!(
                "; {} unexpected, first: {}",
                self.other,
                self.first_other.as_deref().unwrap_or("?")
            ));
        }
        if self.io_errors > 0 {
            s.push_str(&format!("; {} connection errors", self.io_errors));
        }
        if self.unanswered > 0 {
            s.push_str(&format!("; {} unanswered", self.unanswered));
        }
        s
    }
}

pub(crate) fn describe_reply(reply: &Reply) -> String {
    let body = String::from_utf8_lossy(&reply.body);
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        let end = body[start..].find(close)? + start;
        Some(body[start..end].to_string())
    };
    let fault = between("<faultstring>", "</faultstring>")
        .or_else(|| between("<code>", "</code>"))
        .unwrap_or_else(|| body.chars().take(80).collect());
    format!("HTTP {} {fault}", reply.status)
}

/// Closed loop: each workload drives one connection, sending its next request as soon as
/// the last is answered (after `Retry-After` on a 503 when `honour_retry_after`, as a
/// well-behaved client does). Counts the answers that arrive between the end of the
/// warm-up and the end of the run.
pub(crate) async fn closed_loop(
    server: SocketAddr,
    from: Option<IpAddr>,
    workloads: Vec<Box<dyn Workload>>,
    timing: Timing,
    honour_retry_after: bool,
) -> Stats {
    let start = Instant::now();
    let counted_from = start + timing.warmup;
    let end = counted_from + timing.run;
    let tasks: Vec<_> = workloads
        .into_iter()
        .map(|mut workload| {
            spawn_local(async move {
                let mut stats = Stats::default();
                let mut conn: Option<Conn> = None;
                while Instant::now() < end {
                    let request = workload.request();
                    let sent = Instant::now();
                    let answer = timeout_at(end, send(conn.take(), server, from, &request)).await;
                    // Counted by when the answer came: throughput is what the server
                    // completes inside the window, whenever the request was sent.
                    let counted = Instant::now() >= counted_from;
                    match answer {
                        Err(_) => break,
                        Ok(Err(_)) => {
                            if counted {
                                stats.io_errors += 1;
                            }
                            sleep(Duration::from_millis(10)).await;
                        }
                        Ok(Ok((c, reply))) => {
                            let outcome = workload.judge(&reply);
                            if counted {
                                stats.record(outcome, sent.elapsed(), &reply);
                            }
                            if !reply.close {
                                conn = Some(c);
                            }
                            if outcome == Outcome::Shed && honour_retry_after {
                                let wait = retry_after(&reply);
                                sleep_until((Instant::now() + wait).min(end)).await;
                            }
                        }
                    }
                }
                stats
            })
        })
        .collect();
    let mut total = Stats {
        seconds: timing.run.as_secs_f64(),
        ..Stats::default()
    };
    for task in tasks {
        if let Ok(stats) = task.await {
            total.merge(stats);
        }
    }
    total
}

/// `Retry-After` is always 1 s in this service; the body does not carry it, so use that.
pub(crate) fn retry_after(_reply: &Reply) -> Duration {
    Duration::from_secs(1)
}

/// Open loop: requests at a fixed rate whatever the answers, each on an idle connection
/// or a new one. Latency runs from when the request was due, so a slow server cannot
/// hide behind a slowed-down generator. Waits up to `grace` for the last answers.
pub(crate) async fn open_loop(
    server: SocketAddr,
    rate: f64,
    timing: Timing,
    workload: Box<dyn Workload>,
    grace: Duration,
) -> Stats {
    struct Shared {
        workload: Box<dyn Workload>,
        idle: Vec<Conn>,
        stats: Stats,
    }
    let shared = Rc::new(RefCell::new(Shared {
        workload,
        idle: Vec::new(),
        stats: Stats {
            seconds: timing.run.as_secs_f64(),
            ..Stats::default()
        },
    }));
    let start = Instant::now();
    let counted_from = start + timing.warmup;
    let end = counted_from + timing.run;
    let period = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut tasks = Vec::new();
    for k in 0u32.. {
        let due = start + period * k;
        if due >= end {
            break;
        }
        sleep_until(due).await;
        let (request, conn) = {
            let mut s = shared.borrow_mut();
            (s.workload.request(), s.idle.pop())
        };
        let shared = shared.clone();
        tasks.push(spawn_local(async move {
            let answer = send(conn, server, None, &request).await;
            let latency = due.elapsed();
            let mut s = shared.borrow_mut();
            match answer {
                Ok((conn, reply)) => {
                    let outcome = s.workload.judge(&reply);
                    if due >= counted_from {
                        s.stats.record(outcome, latency, &reply);
                    }
                    if !reply.close {
                        s.idle.push(conn);
                    }
                }
                Err(_) if due >= counted_from => s.stats.io_errors += 1,
                Err(_) => {}
            }
        }));
    }
    let give_up = Instant::now() + grace;
    let mut unanswered = 0;
    for task in tasks {
        let abort = task.abort_handle();
        if timeout_at(give_up, task).await.is_err() {
            abort.abort();
            unanswered += 1;
        }
    }
    let mut s = shared.borrow_mut();
    s.stats.unanswered += unanswered;
    std::mem::take(&mut s.stats)
}
