"""Log lines as JSON, one object per line, for log shippers; and the fields a line carries.

A line about one message or one modem carries them as fields of their own, ``"id"`` and
``"modem"``, so a log shipper can find every line about a message without parsing its text. The
code that logs passes them as ``extra={"msg_id": ..., "modem": ...}``, or through `Fields`, a
logger that adds them to every line; the plain-text format shows them because the message text
says them too (``modem=m1 id=...``), as it always has.
"""

import json
import logging
import time

#: record attribute -> JSON key, for the fields a line may carry
FIELDS = {"msg_id": "id", "modem": "modem"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the fields the record carries (id,
    modem), and the traceback, if any."""

    def format(self, record):
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + ".%03dZ" % record.msecs,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute, key in FIELDS.items():
            value = getattr(record, attribute, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class Fields(logging.LoggerAdapter):
    """A logger that adds fixed fields (``Fields(log, {"modem": "m1"})``) to every line, merged
    with the ``extra`` of each call (``extra={"msg_id": ...}``).

    The standard LoggerAdapter replaces a call's extra with its own before Python 3.13; this one
    merges them, the call's winning.
    """

    def process(self, msg, kwargs):
        kwargs["extra"] = {**self.extra, **(kwargs.get("extra") or {})}
        return msg, kwargs
