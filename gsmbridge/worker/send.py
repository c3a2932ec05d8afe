"""Sending one queued message: claim it, send it, record what happened.

The message is committed `sending` before AT+CMGS, so a crash in between is found at the next
start (store.recover_sending) rather than silently sent twice or never. What the modem or network
answers decides the rest:

* every part accepted: `sent`, with the parts' message references (for status reports);
* the codec refuses the text (too many parts, a number it cannot encode) before anything was
  written: `failed` at once, as the same text would fail the same way again;
* +CMS/+CME "no network": the message is fine and waits, however often, and sending holds until
  the worker finds the modem registered again;
* another error the table calls transient: retried with backoff, up to `max_attempts`;
  a permanent one, or the last attempt: `failed`;
* the port or the modem failing mid-send (no answer, port gone): back in the queue, and the
  failure goes on to the worker thread, which recovers the modem. The part in flight may have left
  the modem (at-least-once).

Parts that went out before a failure are remembered (in memory) and not sent again when the
message is retried by this process, under the same concatenation reference.

While a queue drains, sending is pipelined, one message ahead: the message after the one being
sent is already claimed (committed `sending`), so once a message is answered the next one's
AT+CMGS goes out at once, and the answered one is recorded `sent` while the modem answers that
AT+CMGS with its prompt, in the same transaction that claims the one after
(`store.outbound_sent(claim_next=)`). One durable commit a message instead of two, out of the
time between two sends; every message is still committed `sending` before its AT+CMGS. What is
claimed and not sent (the worker stops, recovers, loses the network) goes back to the queue,
and what is sent and not yet recorded is recorded first (`release()`, `flush()`).
"""

import time

from gsmbridge import metrics
from gsmbridge.modem import errors
from gsmbridge.store import DLR_DELIVERED, DLR_QUEUED, DLR_UNDELIVERED

# Send errors that mean "no network right now": the message is fine and waits, however often.
NO_NETWORK = frozenset({("CMS", 331), ("CME", 30), ("CME", 32)})

#: the delivery-report types only a status report from the network can tell (dlr-mask bits): a
#: message whose mask asks for one of them is sent asking for a report; 8 and 16 need none
REPORTED_TYPES = DLR_DELIVERED | DLR_UNDELIVERED | DLR_QUEUED


class OutboundSender:
    """Sends one modem's share of the store's outbound queue, one message per `send_one`.

    `retry` is the Backoff of a message the modem refused (transient errors, by its attempt);
    its base is also the wait of a message refused for want of network.
    """

    def __init__(self, name, store, *, retry, max_attempts, max_parts, status_reports, log):
        self.modem_name = name
        self.store = store
        self.retry = retry
        self.max_attempts = max_attempts
        self.max_parts = max_parts
        self.status_reports = status_reports
        self.log = log
        self._labels = {"modem": name}
        # the counters every sent SMS moves, looked up once
        self._sent = metrics.SENT.labels(**self._labels)
        self._send_seconds = metrics.SEND_SECONDS.labels(**self._labels)
        self._partial = {}              # outbound id -> (concat reference, refs of parts sent)
        self.claimed = None             # the next message, claimed already (row)
        self._unrecorded = None         # a message sent, its `sent` not yet committed
        self._claim_next = False

    def flush(self):
        """Record the message sent and not yet recorded, if any (claiming nothing more)."""
        self._record(claim=False)

    def release(self):
        """Record what was sent, and hand back a claimed message that this worker will not send
        now (it stops, recovers, or has no network)."""
        self.flush()
        row, self.claimed = self.claimed, None
        if row is not None:
            self.store.outbound_unclaim(row["id"])

    def _record(self, claim=True):
        """Commit `sent` for the message sent last (and, with `claim`, claim the one after the
        claimed one in the same transaction)."""
        pending, self._unrecorded = self._unrecorded, None
        if pending is None:
            return
        msg_id, recipient, done, took = pending
        name = self.modem_name
        claimed = self.store.outbound_sent(
            msg_id, references=done, claim_next=name if claim and self._claim_next else None)
        if claimed is not None:
            self.claimed = claimed
        self._sent.inc()
        self._send_seconds.observe(took)
        self.log.info("modem=%s id=%s sent to %s refs=%s", name, msg_id, recipient, done,
                      extra={"msg_id": msg_id})

    def send_one(self, modem, throttle, claim_next=False):
        """Send the oldest queued message this modem may take, if any, through `modem`; the SMS
        it cost go on `throttle`.

        Returns None when nothing was queued, else what became of the message: "taken" (another
        modem's worker claimed it first), "sent", "failed", "retry" or "no network" (then the
        worker holds sending until the modem is registered). A failure of the port or the modem
        is raised, after the message went back in the queue.
        """
        name = self.modem_name
        self._claim_next = claim_next
        row, self.claimed = self.claimed, None
        if row is None:
            self.flush()
            row = self.store.next_outbound(name, time.time())
            if row is None:
                return None
            taken = self.store.outbound_sending(row["id"], modem=name,
                                                claim_next=name if claim_next else None)
            if not taken:
                return "taken"
            if isinstance(taken, dict):
                self.claimed = taken            # the one after: the pipeline starts
        msg_id = row["id"]
        fields = {"msg_id": msg_id}
        resume = self._partial.get(msg_id)
        wants_report = self.status_reports or bool(
            row.get("dlr_url") and (row.get("dlr_mask") or 0) & REPORTED_TYPES)
        started = time.monotonic()
        try:
            refs = modem.send_sms(
                row["recipient"], row["text"], status_report=wants_report,
                max_parts=self.max_parts, encoding=row.get("encoding"),
                concat_reference=resume[0] if resume else None,
                skip_parts=len(resume[1]) if resume else 0,
                while_prompting=self._record if self._unrecorded else None)
        except ValueError as exc:
            self.flush()
            # The codec refused the text (pdu.TooLong beyond max_parts, a number it cannot
            # encode) before anything was written: the same text fails the same way again.
            self._partial.pop(msg_id, None)
            self.store.outbound_failed(msg_id, error="%s: %s" % (type(exc).__name__, exc))
            metrics.SEND_FAILED.labels(**self._labels).inc()
            self.log.error("modem=%s id=%s cannot be sent: %s", name, msg_id, exc, extra=fields)
            return "failed"
        except errors.ModemError as exc:
            self.flush()
            self._remember_parts(msg_id, resume, exc)
            throttle.take(len(getattr(exc, "sent_references", ())) + 1)
            return self._refused(row, exc)
        except Exception as exc:
            # The port or the modem failed mid-send: the message goes back in the queue (at
            # once the first time: the modem, not the message, failed), and run() recovers.
            self.flush()
            self._remember_parts(msg_id, resume, exc)
            attempts = row.get("attempts") or 0
            delay = self.retry.delay(attempts) if attempts else 0
            self.store.outbound_retry(msg_id, error="%s: %s" % (type(exc).__name__, exc),
                                      next_attempt=time.time() + delay)
            metrics.SEND_RETRIED.labels(**self._labels).inc()
            raise
        throttle.take(max(1, len(refs)))
        done = (list(resume[1]) if resume else []) + list(refs)
        self._partial.pop(msg_id, None)
        self.flush()            # (the one before, had no part of this one been sent)
        self._unrecorded = (msg_id, row["recipient"], done, time.monotonic() - started)
        if self.claimed is None:
            self.flush()        # nothing claimed behind it: record it now (the pipeline stops)
        return "sent"

    def _remember_parts(self, msg_id, resume, exc):
        sent = getattr(exc, "sent_references", None)
        reference = getattr(exc, "concat_reference", None)
        if sent and reference is not None:
            before = list(resume[1]) if resume else []
            self._partial[msg_id] = (reference, before + list(sent))

    def _refused(self, row, exc):
        """The modem or the network answered a part with an error."""
        name, msg_id = self.modem_name, row["id"]
        fields = {"msg_id": msg_id}
        attempts = (row.get("attempts") or 0) + 1
        if (exc.kind, exc.code) in NO_NETWORK:
            # Not the message's fault, and no use trying others: the worker holds sending until
            # its next status check finds the modem registered.
            delay = self.retry.base
            self.store.outbound_retry(msg_id, error=str(exc), next_attempt=time.time() + delay)
            metrics.SEND_RETRIED.labels(**self._labels).inc()
            self.log.warning("modem=%s id=%s not sent: %s; waiting for the network", name,
                             msg_id, exc, extra=fields)
            return "no network"
        if exc.transient and attempts < self.max_attempts:
            delay = self.retry.delay(attempts)
            self.store.outbound_retry(msg_id, error=str(exc), next_attempt=time.time() + delay)
            metrics.SEND_RETRIED.labels(**self._labels).inc()
            self.log.warning("modem=%s id=%s send failed (%s), retry %d in %.0fs", name, msg_id,
                             exc, attempts, delay, extra=fields)
            return "retry"
        self._partial.pop(msg_id, None)
        self.store.outbound_failed(msg_id, error=str(exc))
        metrics.SEND_FAILED.labels(**self._labels).inc()
        self.log.error("modem=%s id=%s send failed for good: %s", name, msg_id, exc,
                       extra=fields)
        return "failed"
