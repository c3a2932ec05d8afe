"""HTTP delivery with retries: the loop and the rules the forwarder and the delivery-report sender
share.

Both move rows of a store queue to an HTTP receiver, one thread each, and both follow the same
rules, so an operator learns them once:

- 2xx: done.  A 4xx that judges the request itself (400, 422, 413, ...: see `classify`) is a
  refusal for good: kept as failed, logged, never retried (an operator can requeue it).  A 4xx
  that says the receiver is not there (401, 403, 404, 405, 410, ...: a wrong URL, a deploy under
  way, credentials no longer taken) is no message's fault: retried.  So are 408, 425 and 429
  ("try later"), and anything else (5xx, a redirect, a timeout, a refused connection), with
  capped exponential backoff (gsmbridge.backoff, +-10% jitter under a hard cap), without end: a
  message is worth more than a request.
- A redirect is never followed: a receiver answering 302 to a login page that answers 200 has not
  taken anything.  It is retried and logged with where it pointed (masked).
- Only the start of an answer is read (`answer_limit` bytes): a receiver answering 100 MB costs
  no memory.
- A receiver that cannot be reached at all (a refused connection, a timeout) or that is not
  there is put on hold for the same backoff, so an outage costs one probe per backoff, not one
  request per waiting row.  Each change in what a receiver's answers say is passed to
  `receiver_state` (the forwarder keeps it in the store, for /health).
- What reaches logs, the store and the screen never carries credentials nor a query string's
  values (they hold passwords, phone numbers and message text): `mask_url` is the one function
  that masks a URL, everywhere one is logged or printed; `describe_error` for exceptions.

`Sender` is the loop and the rules.  A subclass says where its rows come from (`due`,
`next_due`), what request each one makes (`request`) to which receiver (`target`), how an
outcome is kept (`mark_delivered`, `mark_retry`, `mark_failed`), and which fields its log lines
carry (`fields`: the message id, the modem).
"""

import re
import sys
import time

from gsmbridge import httpclient
from gsmbridge.backoff import Backoff
from gsmbridge.safeurl import mask_url

#: 4xx statuses that mean "not now" rather than "never"
RETRYABLE_4XX = frozenset({408, 425, 429})
#: 4xx statuses that say the receiver is not there, whatever the message: no such page (404,
#: 410), no such method there (405), not let in (401, 403, 407 from a proxy), not this server
#: (421), not over this protocol (426). What a deploy, a moved URL or a changed password give.
NOT_THERE_4XX = frozenset({401, 403, 404, 405, 407, 410, 421, 426})


def classify(status):
    """What an HTTP status says of a delivery: "delivered" (2xx), "refused" (a 4xx about the
    request itself: 400, 422, 413, 414, 415, ...; kept as failed), "not there" (NOT_THERE_4XX:
    held and retried) or "retry" (1xx, 3xx, RETRYABLE_4XX, 5xx, anything else)."""
    if 200 <= status < 300:
        return "delivered"
    if status in NOT_THERE_4XX:
        return "not there"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return "refused"
    return "retry"

#: how much a retry's wait is spread either way (under the cap), so rows that failed together
#: are not all offered again in the same pass
JITTER = 0.1

def failure(exc):
    """What a request's exception means: "timeout", "unreachable" (both put the receiver on
    hold), "unusable" (a request that cannot be made), or None: not a request's failure.

    The forwarder's requests go through gsmbridge.httpclient, the callbacks' through requests,
    which is imported only when a callback is made: an exception can be requests' only once it
    is loaded, so it is not loaded here to find out.
    """
    if isinstance(exc, httpclient.Timeout):
        return "timeout"
    if isinstance(exc, httpclient.HttpError):
        return "unreachable"
    requests = sys.modules.get("requests")
    if requests is None or not isinstance(exc, requests.RequestException):
        return None
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        from urllib3.exceptions import ReadTimeoutError

        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            return "timeout"               # a timeout, however wrapped
        return "unreachable"
    return "unusable"


def describe_error(exc):
    """A short, credential-free description of a request's exception (no URL, no query string:
    the query holds the sender's number and the message text)."""
    reason = exc
    while True:  # requests wraps urllib3's MaxRetryError, which wraps the real cause
        inner = getattr(reason, "reason", None)
        if inner is None and reason.args and isinstance(reason.args[0], BaseException):
            inner = reason.args[0]
        if inner is None or inner is reason or not isinstance(inner, BaseException):
            break
        reason = inner
    text = str(reason)
    text = re.sub(r"^<[^>]*>:\s*", "", text)             # "<HTTPConnection object at 0x..>: "
    text = re.sub(r"\s*\(?(with )?url: \S+\)?", "", text)  # "... with url: /backend/?id=..&text=.."
    return "%s: %s" % (type(exc).__name__, mask_url(text).strip() or type(reason).__name__)


class Sender:
    """Delivers the due rows of one store queue over HTTP until each is taken or refused.

    One thread runs it (`run`); `step` is one pass, for tests and for the loop.
    """

    #: rows offered per pass
    batch = 50
    #: the longest sleep between looks at the store (a notify wakes it sooner)
    max_idle = 1.0
    #: how many characters of a refusing answer are kept in the error
    body_excerpt = 200
    #: the most of an answer's body that is read, in bytes; the rest is never read
    answer_limit = 4096

    #: the store's wake-ups this sender sleeps for (its queue's topic; None: every one)
    topics = None

    #: words for the logs: the thread ("forwarder"), a pass ("forwarding"), what it moves
    #: ("deliveries"), and a row that arrived ("delivered")
    name = "sender"
    activity = "delivery"
    items = "deliveries"
    done = "delivered"

    def __init__(self, store, *, timeout, backoff_base, backoff_cap, session, logger):
        self.store = store
        self.timeout = timeout
        #: the wait before a row is offered again, and before a receiver on hold is tried again
        self.retry = Backoff(backoff_base, backoff_cap, jitter=JITTER)
        self._session = session
        self.log = logger
        self.holds = {}   # target -> [hold until (epoch), consecutive unreachable tries]
        self.states = {}  # target -> (state, status) as last passed to receiver_state
        self._stop = None
        self._drained = False     # the last pass offered every row that was due

    @property
    def session(self):
        """The requests session a subclass's `request` may use (made when first asked for:
        requests is loaded only by a sender that needs it)."""
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    # -- what a subclass says ------------------------------------------------------------------

    def due(self, now):
        """The rows to offer in this pass (at most `batch`), oldest first."""
        raise NotImplementedError

    def next_due(self):
        """When the next row falls due (epoch), None when nothing is waiting."""
        raise NotImplementedError

    def target(self, row):
        """The receiver a row goes to, as logs may show it: what a hold applies to."""
        raise NotImplementedError

    def describe(self, row):
        """How log lines about the row start (``id=...``)."""
        raise NotImplementedError

    def fields(self, row):
        """The fields log lines about the row carry (jsonlog: ``msg_id``, ``modem``)."""
        return {}

    def request(self, row):
        """Make the row's HTTP request, never following a redirect: a `httpclient.Answer` (its
        body read to `answer_limit` already), or a `requests.Response` with its body streamed
        (stream=True: `read_answer` reads only its start); or raise the client's exception."""
        raise NotImplementedError

    def mark_delivered(self, row, body):
        """Keep the row as delivered, with the receiver's answer."""
        raise NotImplementedError

    def mark_retry(self, row, error, next_attempt):
        """Keep the row pending, its next try not before next_attempt (epoch)."""
        raise NotImplementedError

    def mark_failed(self, row, error):
        """Keep the row as refused for good: visible, never retried."""
        raise NotImplementedError

    def unusable(self, row, attempt, error):
        """A request requests could not make (neither a timeout nor a refused connection):
        retried, unless a subclass knows better."""
        return self._retry(row, attempt, error)

    def error_for(self, response, excerpt):
        """The error kept for an answer that is neither 2xx nor a refusal."""
        if 300 <= response.status_code < 400:
            return "HTTP %d redirect to %s (not followed)" % (
                response.status_code, mask_url(response.headers.get("Location", "?")))
        return "HTTP %d: %s" % (response.status_code, excerpt)

    def read_answer(self, response):
        """The start of an answer's body as text: at most answer_limit bytes are read, and the
        connection is closed rather than drained when there is more. (Make a requests request
        with stream=True, or requests reads the whole body first; an httpclient.Answer has its
        text read already.)"""
        if isinstance(response, httpclient.Answer):
            return response.text
        data = bytearray()
        try:
            for chunk in response.iter_content(1024):
                data += chunk
                if len(data) >= self.answer_limit:
                    break
        finally:
            response.close()
        data = bytes(data[:self.answer_limit])
        try:
            return data.decode(response.encoding or "utf-8", "replace")
        except LookupError:     # a charset Python does not know
            return data.decode("utf-8", "replace")

    def receiver_state(self, target, state, status, error):
        """What the receiver's answers say changed: "up" (it takes rows, or refuses one for a
        reason of the row's own), "failing" (it answers but takes nothing: 5xx, 3xx, "try
        later"), "not there" (NOT_THERE_4XX) or "not answering"; status is the HTTP status
        (None without an answer), error what was kept with the row. Nothing by default."""

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop_event):
        """Thread target: deliver until stop_event is set (store.notify() stops it at once)."""
        self._stop = stop_event
        while not stop_event.is_set():
            try:
                worked = self.step()
            except Exception:
                # The store failing (disk full, closed at shutdown) must not kill the thread:
                # everything not yet delivered is still pending in the store.
                if stop_event.is_set():
                    break
                self.log.exception("%s pass failed; trying again shortly", self.activity)
                stop_event.wait(5.0)
                continue
            # A pass that offered every due row (fewer than a batch) leaves nothing to look for:
            # a row that arrived meanwhile came with a notify(), which ends the wait at once.
            if (not worked or self._drained) and not stop_event.is_set():
                self.store.wait(self._idle_time(), topics=self.topics)
        self.log.info("%s stopped", self.name)

    def _idle_time(self):
        now = time.time()
        until = self.next_due()
        if until is None:
            return self.max_idle
        if until <= now:
            # Due but not tried: their receiver is on hold (or one just fell due).
            holds = [hold for hold, _ in self.holds.values() if hold > now]
            until = min(holds) if holds else now
        return min(self.max_idle, max(0.01, until - now))

    def step(self, now=None):
        """One pass: offer each due row once, but those of a receiver on hold. Returns how many
        were tried."""
        now = time.time() if now is None else now
        tried = 0
        cut_off = set()     # receivers found unreachable in this pass
        rows = self.due(now)
        self._drained = len(rows) < self.batch
        for row in rows:
            if self._stop is not None and self._stop.is_set():
                self._drained = False
                break
            target = self.target(row)
            hold = self.holds.get(target)
            if target in cut_off or hold is not None and hold[0] > now:
                continue
            if self.deliver(row) == "unreachable":
                cut_off.add(target)
            tried += 1
        return tried

    # -- one row -------------------------------------------------------------------------------

    def deliver(self, row):
        """Make one request and keep its outcome. Returns "delivered", "failed" (refused for
        good), "retry" or "unreachable" (retried, and its receiver held: not answering, or not
        there)."""
        attempt = row["attempts"] + 1
        started = time.monotonic()
        try:
            resp = self.request(row)
            body = self.read_answer(resp)
        except Exception as exc:
            kind = failure(exc)
            if kind is None:
                raise
            if kind == "timeout":
                return self._unreachable(row, attempt, "no answer within %gs" % self.timeout)
            if kind == "unreachable":
                return self._unreachable(row, attempt, describe_error(exc))
            return self.unusable(row, attempt, describe_error(exc))
        elapsed = time.monotonic() - started
        target = self.target(row)
        status = resp.status_code
        outcome = classify(status)
        if outcome == "delivered":
            self.holds.pop(target, None)
            self.mark_delivered(row, body)
            self._observe(target, "up", None, None)
            self.log.info("%s %s: HTTP %d, attempt %d, %.2fs", self.describe(row), self.done,
                          status, attempt, elapsed, extra=self.fields(row))
            return "delivered"
        excerpt = body[:self.body_excerpt]
        if outcome == "not there":
            return self._hold(row, attempt, "HTTP %d: %s" % (status, excerpt), status,
                              "not there")
        self.holds.pop(target, None)
        if outcome == "refused":
            self.mark_failed(row, "HTTP %d: %s" % (status, excerpt))
            self._observe(target, "up", None, None)
            self.log.warning("%s refused by %s, kept as failed: HTTP %d %r", self.describe(row),
                             target, status, excerpt, extra=self.fields(row))
            return "failed"
        error = self.error_for(resp, excerpt)
        self._observe(target, "failing", status, error)
        return self._retry(row, attempt, error)

    def backoff(self, attempt):
        """Seconds before try number attempt+1: base * 2^(attempt-1) with +-10% jitter, capped."""
        return self.retry.delay(attempt)

    def _retry(self, row, attempt, error):
        delay = self.backoff(attempt)
        self.mark_retry(row, error, time.time() + delay)
        self.log.warning("%s not %s (attempt %d): %s; next try in %.1fs", self.describe(row),
                         self.done, attempt, error, delay, extra=self.fields(row))
        return "retry"

    def _unreachable(self, row, attempt, error):
        return self._hold(row, attempt, error, None, "not answering")

    def _hold(self, row, attempt, error, status, state):
        """The row is retried and its receiver held: it cannot be reached, or is not there."""
        self._retry(row, attempt, error)
        target = self.target(row)
        self._observe(target, state, status, error)
        hold = self.holds.setdefault(target, [0.0, 0])
        hold[1] += 1
        pause = self.backoff(hold[1])
        hold[0] = time.time() + pause
        if hold[1] == 1 or hold[1] % 10 == 0:
            self.log.warning("receiver %s %s (%d in a row); holding its %s for %.1fs", target,
                             "unreachable" if status is None else "answers HTTP %d" % status,
                             hold[1], self.items, pause)
        return "unreachable"

    def _observe(self, target, state, status, error):
        """Pass a change in what the receiver's answers say to receiver_state (once)."""
        if self.states.get(target) == (state, status):
            return
        try:
            self.receiver_state(target, state, status, error)
        except Exception:
            # only a report (tried again at the next answer): the row's outcome is kept already
            self.log.exception("recording the state of receiver %s failed", target)
        else:
            self.states[target] = (state, status)
