#!/usr/bin/env python3
"""The whole reset-by-link flow with real parts (contract 11.4, 12, 13, 14): the release
binary, a real SMTP server (aiosmtpd) and a real browser (headless Chromium via Selenium).

What is checked, in order, stopping at the first failure:

* mail: `serve --smtp-url` on a fresh demo database mails the reset link that a department
  admin requests over REST (delivery=notify; the answer holds no link) to the user: From
  is --smtp-from, To and the envelope recipient are the user, a Date, a Subject, one
  text/plain part, the link `{base}/reset/{token}` on a line of its own pointing at this
  server, its expiry (RFC 3339, the one the REST answer gave);
* until the link is used the old password still signs in, and the status says a reset is
  pending;
* the page, in Chromium: it states the policy (minimum and maximum length, e-mail, common
  passwords, history); the two password inputs are found by their <label>; a too-short
  password is stopped by the browser (minlength, nothing sent); a password the browser
  lets through but the policy counts as too short (combining accents: 10 UTF-16 units, 7
  code points after NFKC) is refused by the server with the reason in words, and the page
  does not echo it back; a good one gives the success page; the link opened again gives
  the invalid-link page. A screenshot of each step goes to SHOTS_DIR;
* the page's headers, from Python (the form, a refused form, the invalid-link page with
  410, the success page): Cache-Control no-store, Referrer-Policy no-referrer, a CSP that
  allows no script and frame-ancestors 'none', X-Content-Type-Options nosniff;
* the password_changed mail arrives; the new password signs in (GET
  /api/users/{id}/password as that user), the old one is refused (401), the credential
  version went up, no reset is pending;
* outage: with the SMTP server stopped, a second reset (notify) and a REST password change
  send no mail within 3 s and `events --json` lists both events unacknowledged; the
  service is stopped (SIGTERM, exit 0) and started again on the same database with the
  same flags, the events still listed; the SMTP server started again on the same port:
  each of the two mails arrives exactly once (a few seconds more bring no duplicate), and
  no event is left unacknowledged; the link mailed after the restart opens the form on the
  restarted service and sets a password (its password_changed mail arrives too);
* no mail holds a password: not a demo password, not the one the "Try it" block prints,
  not any this run typed.

Usage:  reset_flow.py BIN SHOTS_DIR [--no-mail]
BIN is the soap-passwd binary; it is started here (its own database and SMTP port, on
loopback). Needs selenium, aiosmtpd and requests (tests/interop/requirements.txt), and
Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver).

--no-mail (development, for a binary without the SMTP sender): no --smtp-* flags, the link
is asked for with delivery=return, every mail check and the SMTP outage are left out (the
events, the restart and the page are still checked).

Prints "reset_flow: N checks passed" and exits 0, or "reset_flow: FAIL: ..." with the
service's last log lines and exits 1. Kills everything it started.
"""

import argparse
import datetime
import email
import email.policy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

try:
    import requests
    from aiosmtpd.controller import Controller
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError as e:  # pragma: no cover - depends on the caller's environment
    sys.exit(f"error: {e.name} is not installed (pip install -r tests/interop/requirements.txt)")

ROOT = Path(__file__).resolve().parents[2]
DEMO = json.loads((ROOT / "fixtures" / "demo.json").read_text())["accounts"][0]
ACCOUNT = DEMO["url"]
POLICY = DEMO["policy"]
USERS = {u["id"]: u for u in DEMO["users"]}
SMTP_FROM = "soap-passwd <noreply@example.test>"
SMTP_FROM_ADDRESS = "noreply@example.test"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# A phone's viewport: the page is one narrow column, the screenshots stay readable.
VIEWPORT = {"width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": True}

# Who does what (fixtures/demo.json): a department admin resets a user of a sub-department;
# in the outage another department admin resets one of theirs and the account admin sets a
# password over REST.
RESETTER, RESET_USER = "u-sales-admin", "u-learner2"
OUTAGE_RESETTER, OUTAGE_RESET_USER = "u-eng-admin", "u-engineer"
OUTAGE_CHANGER, OUTAGE_CHANGED_USER = "u-admin", "u-trainer"

TOO_SHORT = "Short-1"  # 7 characters: the browser's minlength stops it
# 10 UTF-16 units (what the browser's minlength counts), 7 code points once NFKC composes
# the accents (what the policy counts): only the server can refuse it.
TOO_SHORT_DECOMPOSED = "Ate\u0301-O\u0301la\u0301"
NEW_PASSWORD = "Harbor-Lantern-Quiet-48"
OUTAGE_NEW_PASSWORD = "Cobalt-Meadow-Rivet-57"
OUTAGE_LINK_PASSWORD = "Juniper-Falcon-Anvil-39"
TYPED = [TOO_SHORT, TOO_SHORT_DECOMPOSED, NEW_PASSWORD, OUTAGE_NEW_PASSWORD, OUTAGE_LINK_PASSWORD]

MAIL_WAIT = 20  # seconds for a mail the service should send now
QUIET_WAIT = 3  # seconds during which no mail may come (SMTP server down)
DUPLICATE_WAIT = 5  # seconds more, after the mails came back, for a duplicate to show
# An RFC 3339 time, or the mails' readable form of one: `2026-12-02 06:22:50 UTC`.
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2}| UTC)")
TOKEN = r"[A-Za-z0-9_-]{22,}"  # at least 128 bits, URL-safe


class Failure(Exception):
    pass


checks = 0


def check(ok, what):
    """One check: counted when it holds, else the run stops with WHAT."""
    global checks
    if not ok:
        raise Failure(what)
    checks += 1


def wait_for(what, probe, timeout):
    """Polls PROBE until it answers something true (returned), or fails after TIMEOUT s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            check(True, what)
            return value
        if time.monotonic() > deadline:
            raise Failure(f"{what}: not within {timeout} s")
        time.sleep(0.1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mail:
    """One message as the SMTP server accepted it."""

    def __init__(self, mail_from, rcpt_tos, raw):
        self.mail_from = mail_from
        self.rcpt_tos = rcpt_tos
        self.raw = raw
        self.msg = email.message_from_bytes(raw, policy=email.policy.default)

    @property
    def to(self):
        return [a.addr_spec for a in self.msg["To"].addresses] if self.msg["To"] else []

    def text(self):
        """The body, decoded (transfer encoding and charset), if it is one text part."""
        if self.msg.is_multipart():
            return ""
        return self.msg.get_content() if self.msg.get_content_maintype() == "text" else ""

    def everything(self):
        """Every readable form of the message: raw, headers decoded, parts decoded."""
        texts = [self.raw.decode("utf-8", "replace")]
        texts += [str(v) for v in self.msg.values()]
        for part in self.msg.walk():
            if part.get_content_maintype() == "text":
                texts.append(part.get_content())
        return texts


class SmtpSink:
    """A real SMTP server (aiosmtpd) on one loopback port, keeping every message; it can be
    stopped (its clients' connections closed too) and started again on the same port."""

    def __init__(self, port):
        self.port = port
        self.mails = []
        self._lock = threading.Lock()
        self._controller = None

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        with self._lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 OK: queued"

    def start(self):
        sink = self

        class Tracked(Controller):
            sessions = []

            def factory(self):
                smtp = super().factory()
                self.sessions.append(smtp)
                return smtp

        self._controller = Tracked(sink, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self):
        controller, self._controller = self._controller, None
        if controller is None:
            return

        def hang_up():
            for smtp in controller.sessions:
                if smtp.transport is not None:
                    smtp.transport.close()

        # A client that keeps its connection (a pool) must see the server go away.
        controller.loop.call_soon_threadsafe(hang_up)
        time.sleep(0.2)
        controller.stop()

    def to(self, address):
        with self._lock:
            return [m for m in self.mails if address in m.rcpt_tos]

    def count(self):
        with self._lock:
            return len(self.mails)

    def all(self):
        with self._lock:
            return list(self.mails)


class Service:
    """`BIN serve --demo` on a database of its own, on a free loopback port."""

    def __init__(self, binary, work, flags):
        self.binary = binary
        self.work = work
        self.db = str(work / "x.db")
        self.flags = flags
        self.proc = None
        self.base = None
        self.started = 0
        self.printed = ""

    def start(self):
        self.started += 1
        out = self.work / f"serve{self.started}.out"
        self.err = self.work / f"serve{self.started}.err"
        argv = [self.binary, "serve", "--demo", "--db", self.db, "--bind", "127.0.0.1:0", *self.flags]
        with open(out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        # Ready once the whole "Try it" block is printed (its heredoc ends with XML), as
        # .ci/test's start_server waits.
        deadline = time.monotonic() + 30
        while True:
            text = out.read_text(errors="replace")
            if re.search(r"^XML$", text, re.M):
                break
            if self.proc.poll() is not None:
                raise Failure(f"serve exited with {self.proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise Failure("serve did not print its 'Try it' block within 30 s")
            time.sleep(0.1)
        self.printed += text
        m = re.search(r"^soap-passwd listening on (http\S+)", text, re.M)
        check(m, "serve prints 'soap-passwd listening on URL'")
        url = urlsplit(m.group(1))
        self.base = f"{url.scheme}://{url.netloc}"

    def stop(self):
        """SIGTERM, as an init system stops it; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure("serve did not stop within 30 s of SIGTERM")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines=20):
        try:
            return "\n".join(self.err.read_text(errors="replace").splitlines()[-lines:])
        except (AttributeError, OSError):
            return ""

    def pending_events(self):
        """`BIN events --db DB --json`: the events not acknowledged yet."""
        run = subprocess.run([self.binary, "events", "--db", self.db, "--json"],
                             capture_output=True, text=True, timeout=30)
        if run.returncode != 0:
            raise Failure(f"events --json exited with {run.returncode}: {run.stderr.strip()}")
        return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def credentials(user_id, password=None):
    user = USERS[user_id]
    return (user["email"], password or user["password"])


def rest(method, base, path, auth=None, body=None):
    """One REST call on a connection of its own (none is left open for the restart)."""
    headers = {"X-Account-Url": ACCOUNT, "Connection": "close"}
    return requests.request(method, base + path, auth=auth, json=body, headers=headers, timeout=30)


def request_reset(base, caller, user_id, delivery):
    r = rest("POST", base, "/api/password-resets", credentials(caller),
             {"userIds": [user_id], "delivery": delivery})
    check(r.status_code == 200, f"POST /api/password-resets ({delivery}) as {caller}: 200, got {r.status_code} {r.text}")
    item = r.json()["items"][0]
    check(item.get("userId") == user_id and item.get("success") is True,
          f"the reset of {user_id} succeeded: {item}")
    check(RFC3339.fullmatch(item.get("expiresAt", "")), f"the reset answer has an RFC 3339 expiresAt: {item}")
    if delivery == "notify":
        check("link" not in item, f"delivery=notify answers no link: {item}")
    else:
        check(item.get("link", "").startswith(base + "/reset/"), f"delivery=return answers a link on {base}: {item}")
    return item


def status_as(base, user_id, password):
    return rest("GET", base, f"/api/users/{user_id}/password", credentials(user_id, password))


def timestamp(text):
    return datetime.datetime.fromisoformat(text.replace(" UTC", "Z").replace("z", "Z").replace("t", "T"))


def secrets_of(service):
    """Every password that must never be in a mail."""
    secrets = [u["password"] for u in USERS.values()]
    secrets += re.findall(r"<password>([^<]+)</password>", service.printed)
    for p in TYPED:
        secrets += [p, unicodedata.normalize("NFC", p), unicodedata.normalize("NFKC", p)]
    return set(secrets)


def check_mail(mail, user_id, kind):
    """The headers and shape every mail must have."""
    address = USERS[user_id]["email"]
    msg = mail.msg
    check(mail.mail_from == SMTP_FROM_ADDRESS, f"{kind} mail: envelope sender {SMTP_FROM_ADDRESS}, got {mail.mail_from!r}")
    check(mail.rcpt_tos == [address], f"{kind} mail: envelope recipient only {address}, got {mail.rcpt_tos}")
    sender = msg["From"].addresses if msg["From"] else ()
    check(len(sender) == 1 and sender[0].addr_spec == SMTP_FROM_ADDRESS and sender[0].display_name == "soap-passwd",
          f"{kind} mail: From is {SMTP_FROM!r}, got {msg['From']!r}")
    check(mail.to == [address], f"{kind} mail: To is {address}, got {msg['To']!r}")
    check(getattr(msg["Date"], "datetime", None),
          f"{kind} mail: a Date header, got {msg['Date']!r}")
    subject = str(msg["Subject"] or "")
    check(re.search(r"password", subject, re.I), f"{kind} mail: a Subject about the password, got {subject!r}")
    check(not msg.is_multipart() and msg.get_content_type() == "text/plain",
          f"{kind} mail: one text/plain part, got {msg.get_content_type()}")
    check(mail.text().strip(), f"{kind} mail: a body")


def check_reset_mail(mail, user_id, base, expires_at):
    """A password_reset_requested mail: its link (on a line of its own) and its expiry."""
    check_mail(mail, user_id, "reset")
    body = mail.text()
    pattern = re.compile(re.escape(base) + "/reset/" + TOKEN)
    links = [line.strip() for line in body.splitlines() if pattern.fullmatch(line.strip())]
    check(len(links) == 1, f"reset mail: the link {base}/reset/TOKEN on a line of its own, once; body:\n{body}")
    times = [timestamp(t) for t in RFC3339.findall(body)]
    check(timestamp(expires_at) in times,
          f"reset mail: its expiry {expires_at} to the second, found {RFC3339.findall(body)}; body:\n{body}")
    return links[0]


def check_no_password(sink, service):
    secrets = secrets_of(service)
    for mail in sink.all():
        for text in mail.everything():
            leaked = [s for s in secrets if s in text]
            check(not leaked, f"no password in any mail: the mail to {mail.rcpt_tos} holds {leaked}")


def check_page_headers(response, what):
    h = response.headers
    check(h.get("Cache-Control", "").lower() == "no-store", f"{what}: Cache-Control no-store, got {h.get('Cache-Control')!r}")
    check(h.get("Referrer-Policy", "").lower() == "no-referrer", f"{what}: Referrer-Policy no-referrer, got {h.get('Referrer-Policy')!r}")
    check(h.get("X-Content-Type-Options", "").lower() == "nosniff", f"{what}: X-Content-Type-Options nosniff")
    csp = {}
    for directive in h.get("Content-Security-Policy", "").split(";"):
        name, *values = directive.split()
        csp[name.lower()] = values
    scripts = csp.get("script-src", csp.get("default-src"))
    check(scripts == ["'none'"], f"{what}: the CSP allows no script, got {h.get('Content-Security-Policy')!r}")
    check(csp.get("frame-ancestors") == ["'none'"], f"{what}: the CSP has frame-ancestors 'none'")
    check(h.get("Content-Type", "").startswith("text/html"), f"{what}: text/html")


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    check(m, "the form carries its anti-forgery field")
    return m.group(1)


def check_headers_from_python(link):
    """The form and a refused form (the link stays usable), from requests."""
    with requests.Session() as s:
        form = s.get(link, timeout=30, headers={"Connection": "close"})
        check(form.status_code == 200, f"GET {link}: 200, got {form.status_code}")
        check_page_headers(form, "the form")
        refused = s.post(link, timeout=30, headers={"Connection": "close"},
                         data={"csrf": csrf_of(form.text), "password": TOO_SHORT, "passwordConfirm": TOO_SHORT})
        check(refused.status_code == 400, f"POST a too-short password: 400, got {refused.status_code}")
        check_page_headers(refused, "the refused form")


class Browser:
    """Headless Chromium (Debian's) through chromedriver, on a fresh profile."""

    def __init__(self, work, shots):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={work / 'chromium-profile'}")
        self.driver = webdriver.Chrome(options=options, service=ChromeService(CHROMEDRIVER))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", VIEWPORT)
        self.shots = shots
        self.shot = 0

    def open(self, url):
        self.driver.get(url)

    def screenshot(self, name):
        """The viewport's width, the page's height (no blank below it)."""
        self.shot += 1
        path = self.shots / f"{self.shot:02d}-{name}.png"
        bottom = self.driver.execute_script(
            "return Math.max(0, ...[...document.body.children].map(e => e.getBoundingClientRect().bottom))")
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {**VIEWPORT, "height": max(int(bottom) + 32, 320)})
        check(self.driver.save_screenshot(str(path)), f"screenshot {path}")
        return path

    def text(self):
        return self.driver.find_element(By.TAG_NAME, "body").text

    def heading(self):
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def labelled(self, pattern, avoid=None):
        """The input a <label> whose text matches PATTERN (and not AVOID) names."""
        labels = [label for label in self.driver.find_elements(By.TAG_NAME, "label")
                  if re.search(pattern, label.text, re.I) and not (avoid and re.search(avoid, label.text, re.I))]
        check(len(labels) == 1, f"one <label> reads /{pattern}/, found {[label.text for label in labels]}")
        target = labels[0].get_attribute("for")
        if target:
            inputs = self.driver.find_elements(By.ID, target)
        else:
            inputs = labels[0].find_elements(By.TAG_NAME, "input")
        check(len(inputs) == 1, f"the label {labels[0].text!r} names one input")
        check(inputs[0].get_attribute("type") == "password",
              f"the input labelled {labels[0].text!r} is a password input")
        return inputs[0]

    def fill(self, password, confirm=None):
        new = self.labelled(r"new password", avoid=r"repeat|confirm|again")
        again = self.labelled(r"repeat|confirm|again")
        for field, value in ((new, password), (again, password if confirm is None else confirm)):
            field.clear()
            field.send_keys(value)
        return new

    def submit(self, sent=True):
        """Clicks the one submit button; when SENT, waits for the answer's page."""
        buttons = self.driver.find_elements(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]")
        check(len(buttons) == 1, "the form has one submit button")
        page = self.driver.find_element(By.TAG_NAME, "html")
        buttons[0].click()
        if sent:
            WebDriverWait(self.driver, 15).until(staleness_of(page), "the form's answer did not come")

    def quit(self):
        try:
            self.driver.quit()
        except WebDriverException:
            pass


def browse_reset(browser, link):
    """The page in Chromium: policy, a refusal in words, success, then the dead link."""
    b = browser
    b.open(link)
    check(re.search(r"new password", b.heading(), re.I), f"the link opens the form, got {b.heading()!r}")
    page = b.text()
    check(re.search(rf"at least {POLICY['min_length']}\b", page), f"the page states the minimum length {POLICY['min_length']}:\n{page}")
    check(re.search(rf"\b{POLICY['max_length']}\b", page), f"the page states the maximum length {POLICY['max_length']}")
    check(re.search(r"e-?mail", page, re.I), "the page states that the e-mail is not allowed")
    check(re.search(r"common", page, re.I), "the page states that common passwords are not allowed")
    check(re.search(rf"last {POLICY['history']}\b", page), f"the page states the history ({POLICY['history']})")
    b.screenshot("form")

    # The browser's own check (the input's minlength) stops a too-short password.
    field = b.fill(TOO_SHORT)
    b.submit(sent=False)
    check(field.get_property("validity")["tooShort"], "the browser finds the too-short password too short (minlength)")
    check(b.driver.current_url == link and not b.driver.find_elements(By.CSS_SELECTOR, "[role=alert]"),
          "the browser did not send the too-short password")
    time.sleep(0.6)  # the browser's bubble fades in
    b.screenshot("too-short-stopped-by-browser")

    # One the browser lets through (it counts UTF-16 units) but the policy counts as too
    # short (code points after NFKC): the server refuses it and says why, in words.
    field = b.fill(TOO_SHORT_DECOMPOSED)
    check(field.get_property("validity")["valid"], "the browser lets the decomposed password through")
    b.submit()
    check("expired" not in b.heading().lower(),
          f"the service accepts the form as the browser sent it, got the page: {b.text()!r}"
          " (Chromium sends Origin: null and Sec-Fetch-Site: same-origin under Referrer-Policy: no-referrer)")
    alerts = b.driver.find_elements(By.CSS_SELECTOR, "[role=alert]")
    check(alerts, f"the refused form shows its problems (role=alert), got:\n{b.text()}")
    problems = alerts[0].text
    check(re.search(rf"(shorter than|at least|too short)[^.\n]*\b{POLICY['min_length']}\b", problems, re.I),
          f"the refusal says in words that it is shorter than {POLICY['min_length']} characters:\n{problems}")
    check("TOO_SHORT" not in problems, f"the refusal is in words, not a code:\n{problems}")
    source = b.driver.page_source
    check(not any(unicodedata.normalize(f, TOO_SHORT_DECOMPOSED) in source for f in ("NFC", "NFD")),
          "the refused form does not echo the password back")
    check(re.search(rf"at least {POLICY['min_length']}\b", b.text()), "the refused form states the policy again")
    shot = b.screenshot("too-short-refused-by-server")

    b.fill(NEW_PASSWORD)
    b.submit()
    check(re.search(r"password is changed|password changed", b.heading(), re.I),
          f"a good password gives the success page, got {b.heading()!r}:\n{b.text()}")
    b.screenshot("done")

    b.open(link)
    check(re.search(r"no longer valid", b.heading(), re.I), f"the spent link gives the invalid-link page, got {b.heading()!r}")
    b.screenshot("link-spent")
    return shot


def run(args, work, shots):
    mail = not args.no_mail
    sink = None
    flags = []
    if mail:
        sink = SmtpSink(free_port())
        sink.start()
        flags = ["--smtp-url", f"smtp://127.0.0.1:{sink.port}", "--smtp-from", SMTP_FROM, "--smtp-retry-max", "2s"]
    service = Service(args.bin, work, flags)
    browser = None
    try:
        service.start()
        base = service.base
        check(service.pending_events() == [], "a fresh demo database has no event")

        # 1. The reset, by mail.
        old = USERS[RESET_USER]["password"]
        before = status_as(base, RESET_USER, old)
        check(before.status_code == 200, f"{RESET_USER} signs in with the demo password: {before.status_code}")
        version = before.json()["credentialVersion"]
        if mail:
            item = request_reset(base, RESETTER, RESET_USER, "notify")
            address = USERS[RESET_USER]["email"]
            reset_mail = wait_for(f"the reset mail to {address}", lambda: sink.to(address), MAIL_WAIT)[0]
            link = check_reset_mail(reset_mail, RESET_USER, base, item["expiresAt"])
            wait_for("the reset event acknowledged once mailed",
                     lambda: not any(e["user_id"] == RESET_USER for e in service.pending_events()), MAIL_WAIT)
        else:
            link = request_reset(base, RESETTER, RESET_USER, "return")["link"]
        pending = status_as(base, RESET_USER, old)
        check(pending.status_code == 200, "until the link is used the old password still signs in")
        check(pending.json().get("resetPending") is True, f"the status says a reset is pending: {pending.json()}")

        # 2. The page: headers from Python, then the browser.
        check_headers_from_python(link)
        browser = Browser(work, shots)
        refused_shot = browse_reset(browser, link)
        browser.quit()
        browser = None
        spent = requests.get(link, timeout=30, headers={"Connection": "close"})
        check(spent.status_code == 410, f"the spent link answers 410, got {spent.status_code}")
        check_page_headers(spent, "the invalid-link page")

        # 3. The change, its mail, the new password.
        if mail:
            address = USERS[RESET_USER]["email"]
            changed = wait_for(f"the password_changed mail to {address}", lambda: sink.to(address)[1:], MAIL_WAIT)
            check_mail(changed[0], RESET_USER, "password_changed")
            check(len(sink.to(address)) == 2, "two mails for the reset user: the link, the change")
        now = status_as(base, RESET_USER, NEW_PASSWORD)
        check(now.status_code == 200, f"the new password signs in: {now.status_code} {now.text}")
        check(now.json()["credentialVersion"] > version, f"the credential version went up: {now.json()}")
        check(now.json().get("resetPending") is False, f"no reset pending any more: {now.json()}")
        check(now.json().get("temporary") is False, "the new password is not temporary")
        refused = status_as(base, RESET_USER, old)
        check(refused.status_code == 401, f"the old password is refused: 401, got {refused.status_code}")

        # 4. Outage: the SMTP server down, the service restarted meanwhile.
        if mail:
            wait_for("every event so far acknowledged", lambda: service.pending_events() == [], MAIL_WAIT)
        # Without mail nothing is ever acknowledged: the events so far stay listed.
        earlier = {e["id"] for e in service.pending_events()}
        mails_before = sink.count() if mail else 0
        if mail:
            sink.stop()
        request_reset(base, OUTAGE_RESETTER, OUTAGE_RESET_USER, "notify")
        r = rest("PATCH", base, f"/api/users/{OUTAGE_CHANGED_USER}/password", credentials(OUTAGE_CHANGER),
                 {"password": OUTAGE_NEW_PASSWORD})
        check(r.status_code == 200 and r.json() == {"success": True}, f"PATCH a password as {OUTAGE_CHANGER}: {r.status_code} {r.text}")
        time.sleep(QUIET_WAIT)
        if mail:
            check(sink.count() == mails_before, "no mail while the SMTP server is down")

        def outage_events():
            events = [e for e in service.pending_events() if e["id"] not in earlier]
            resets = [e for e in events if e["kind"] == "password_reset_requested" and e["user_id"] == OUTAGE_RESET_USER]
            changes = [e for e in events if e["kind"] == "password_changed" and e["user_id"] == OUTAGE_CHANGED_USER]
            return events, resets, changes

        events, resets, changes = outage_events()
        check(len(resets) == 1 and len(changes) == 1 and len(events) == 2,
              f"events --json lists exactly the two unsent events: {events}")
        outage_link = resets[0].get("link", "")
        check(re.fullmatch(re.escape(base) + "/reset/" + TOKEN, outage_link), f"the unsent reset event holds its link: {resets[0]}")
        check(changes[0].get("via") == "rest", f"the unsent change event says via rest: {changes[0]}")
        code = service.stop()
        check(code == 0, f"serve exits 0 on SIGTERM, got {code}")
        service.start()
        time.sleep(1)
        events_after, _, _ = outage_events()
        check(sorted(e["id"] for e in events_after) == sorted(e["id"] for e in events),
              f"after the restart the same two events are still unacknowledged: {events_after}")
        if mail:
            check(sink.count() == mails_before, "no mail while the SMTP server is down, after the restart")
            sink.start()
            reset_address = USERS[OUTAGE_RESET_USER]["email"]
            changed_address = USERS[OUTAGE_CHANGED_USER]["email"]
            wait_for("both mails once the SMTP server is back",
                     lambda: sink.to(reset_address) and sink.to(changed_address), MAIL_WAIT)
            time.sleep(DUPLICATE_WAIT)
            check(len(sink.to(reset_address)) == 1, f"the reset mail came once, got {len(sink.to(reset_address))}")
            check(len(sink.to(changed_address)) == 1, f"the password_changed mail came once, got {len(sink.to(changed_address))}")
            check(sink.count() == mails_before + 2, "no other mail came")
            # The reset was asked of the first service: its link names that origin.
            mailed = check_reset_mail(sink.to(reset_address)[0], OUTAGE_RESET_USER, base, resets[0]["link_expires_at"])
            check(mailed == outage_link, f"the mail holds the event's link: {mailed} vs {outage_link}")
            check_mail(sink.to(changed_address)[0], OUTAGE_CHANGED_USER, "password_changed")
            wait_for("no event left unacknowledged", lambda: service.pending_events() == [], MAIL_WAIT)

        # The link sent after the restart works on the restarted service (same database,
        # a new port: the token is what counts).
        token = outage_link.rsplit("/", 1)[1]
        restarted_link = f"{service.base}/reset/{token}"
        with requests.Session() as s:
            form = s.get(restarted_link, timeout=30, headers={"Connection": "close"})
            check(form.status_code == 200, f"the link opens the form on the restarted service: {form.status_code}")
            done = s.post(restarted_link, timeout=30, headers={"Connection": "close"},
                          data={"csrf": csrf_of(form.text), "password": OUTAGE_LINK_PASSWORD,
                                "passwordConfirm": OUTAGE_LINK_PASSWORD})
            check(done.status_code == 200 and "changed" in done.text.lower(),
                  f"the form sets the password: {done.status_code}\n{done.text}")
            check_page_headers(done, "the success page")
        check(status_as(service.base, OUTAGE_RESET_USER, OUTAGE_LINK_PASSWORD).status_code == 200,
              "the password set through the mailed link signs in")
        if mail:
            address = USERS[OUTAGE_RESET_USER]["email"]
            wait_for(f"the password_changed mail to {address}", lambda: sink.to(address)[1:], MAIL_WAIT)
            check_mail(sink.to(address)[1], OUTAGE_RESET_USER, "password_changed")
            check_no_password(sink, service)
        return refused_shot
    except Exception:
        log = service.log_tail()
        if log:
            print(f"reset_flow: the service's last log lines ({service.err}):\n{log}", file=sys.stderr)
        raise
    finally:
        if browser is not None:
            browser.quit()
        service.kill()
        if sink is not None:
            sink.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bin")
    parser.add_argument("shots_dir")
    parser.add_argument("--no-mail", action="store_true", help="development: a binary without the SMTP sender")
    args = parser.parse_args()
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            sys.exit(f"reset_flow: FAIL: {path} is missing (apt-get install chromium chromium-driver)")
    shots = Path(args.shots_dir)
    shots.mkdir(parents=True, exist_ok=True)
    for old in shots.glob("*.png"):
        old.unlink()
    # Selenium finds nothing on the network: the browser and the driver are given.
    os.environ.setdefault("SE_OFFLINE", "true")
    work = Path(tempfile.mkdtemp(prefix="reset-flow-"))
    try:
        shot = run(args, work, shots)
    except Failure as failure:
        print(f"reset_flow: FAIL: {failure} (after {checks} checks passed)", file=sys.stderr)
        return 1
    except Exception as error:  # a crash of this script or of a part: still one clear line
        traceback.print_exc()
        print(f"reset_flow: FAIL: {type(error).__name__}: {error} (after {checks} checks passed)", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"reset_flow: screenshots in {shots} (the refused form: {shot.name})")
    print(f"reset_flow: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
