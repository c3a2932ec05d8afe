"""Log lines for log shippers: a line about a message carries its id and modem as JSON fields,
and the plain-text format still shows them."""

import io
import json
import logging

from gsmbridge.jsonlog import Fields, JsonFormatter


def _logger(formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("gsmbridge.test_jsonlog.%s" % type(formatter).__name__)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_json_line_carries_the_message_id_and_the_modem_as_fields():
    logger, stream = _logger(JsonFormatter())
    log = Fields(logger, {"modem": "m1"})
    log.info("modem=%s id=%s sent to %s", "m1", "abc123", "+255700000001",
             extra={"msg_id": "abc123"})
    log.info("modem=%s up", "m1")
    logger.info("no fields here")
    sent, up, plain = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sent["id"] == "abc123" and sent["modem"] == "m1"
    assert sent["message"] == "modem=m1 id=abc123 sent to +255700000001"
    assert up["modem"] == "m1" and "id" not in up
    assert "id" not in plain and "modem" not in plain
    assert sent["level"] == "INFO" and sent["logger"] == logger.name


def test_a_call_s_fields_win_over_the_logger_s():
    logger, stream = _logger(JsonFormatter())
    Fields(logger, {"modem": "m1"}).info("moved", extra={"modem": "m2", "msg_id": "x"})
    line = json.loads(stream.getvalue())
    assert (line["modem"], line["id"]) == ("m2", "x")


def test_the_plain_text_format_still_shows_id_and_modem():
    logger, stream = _logger(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    Fields(logger, {"modem": "m1"}).info("modem=%s id=%s received", "m1", "abc123",
                                         extra={"msg_id": "abc123"})
    assert stream.getvalue().strip().endswith("modem=m1 id=abc123 received")


def test_a_traceback_stays_inside_its_one_line():
    logger, stream = _logger(JsonFormatter())
    try:
        raise ValueError("odd PDU")
    except ValueError:
        Fields(logger, {"modem": "m1"}).exception("could not handle")
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["modem"] == "m1" and "ValueError: odd PDU" in entry["exception"]
