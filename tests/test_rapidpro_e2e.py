"""End to end with RapidPro: a real gsmbridge process (style = rapidpro) on its simulated modem,
and a stand-in for courier's Kannel channel (tests/courier.py, written from courier's source) that
takes inbound SMS and delivery reports, and makes its sends exactly as courier's handler does.

What the simulated modem was asked to send is read from its control API and its SMS-SUBMIT PDUs
are decoded twice: by our codec and by gammu (an independent oracle). What became of each send is
read where RapidPro would read it: the statuses that the bridge's delivery reports gave courier.
"""

import binascii
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

import gammu
import pytest
import requests

from bridgeproc import BridgeProcess, wait_for
from courier import Courier, parse_number
from gsmbridge.codec import pdu
from gsmbridge.store import Store

pytestmark = pytest.mark.slow

#: the SIM's number, [modem] number in the bridge's ini and the channel's address in RapidPro
OWN_NUMBER = "+255700000100"
#: generous bounds so a slow machine never fails; they bound a wait, nothing asserts a speed
DEADLINE = 60.0


@pytest.fixture(scope="module")
def courier():
    c = Courier()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def rapidpro(courier, tmp_path_factory):
    """(courier, its channel, the bridge): one bridge for the module, its channel's send URL the
    bridge's sendsms, its credentials the bridge's [http] username and password."""
    workdir = tmp_path_factory.mktemp("rapidpro")
    placeholder = "http://127.0.0.1:9/c/kn/00000000-0000-0000-0000-000000000000/receive"
    bridge = BridgeProcess(workdir, rapidsms_url=placeholder, style="rapidpro",
                           modem_extra="number = %s" % OWN_NUMBER)
    username, password = bridge.auth
    channel = courier.add_channel(address=OWN_NUMBER, country="TZ",
                                  send_url=bridge.api + "/cgi-bin/sendsms",
                                  username=username, password=password)
    with open(bridge.ini, encoding="utf-8") as f:
        ini = f.read()
    with open(bridge.ini, "w", encoding="utf-8") as f:
        f.write(ini.replace(placeholder, courier.receive_url(channel)))
    bridge.start(timeout=DEADLINE)
    try:
        yield courier, channel, bridge
    finally:
        bridge.stop()


def explain(bridge):
    return "--- gsmbridge log ---\n" + bridge.log()


def sent_to(bridge, number):
    return [e for e in bridge.sent() if e["to"] == number]


def wait_sent(bridge, number, count=1):
    return wait_for(lambda: len(sent_to(bridge, number)) >= count and sent_to(bridge, number),
                    timeout=DEADLINE, message="%d SMS to %s" % (count, number))


def decoded(entry):
    """(text, encoding, parts) of one sent SMS from its SMS-SUBMIT PDUs, by our codec; the parts
    must be one concatenated message, all there, in order of their sequence numbers."""
    submits = [pdu.decode(p, incoming=False) for p in entry["pdus"]]
    assert all(isinstance(s, pdu.Submit) and s.recipient == entry["to"] for s in submits)
    if len(submits) > 1:
        assert len({(s.concat.reference, s.concat.total) for s in submits}) == 1
        assert sorted(s.concat.sequence for s in submits) == list(range(1, len(submits) + 1))
        submits.sort(key=lambda s: s.concat.sequence)
    encodings = {s.encoding for s in submits}
    assert len(encodings) == 1
    encoding = encodings.pop()
    text = pdu.decode_body(encoding, b"".join(s.body for s in submits))
    return text, encoding, len(submits)


def gammu_text(entry):
    """The same text read by gammu from the same PDUs."""
    parts = [gammu.DecodePDU(binascii.unhexlify(p)) for p in entry["pdus"]]
    if len(parts) == 1:
        return parts[0]["Text"]
    return "".join(p["Text"] for p in sorted(parts, key=lambda p: p["UDH"]["PartNumber"]))


def statuses(courier, msg_uuid, count):
    courier.wait_for(lambda: len(courier.statuses.get(msg_uuid, [])) >= count, DEADLINE)
    return list(courier.statuses.get(msg_uuid, []))


def status_hits(courier, msg_uuid):
    return [h for h in courier.hits if "uuid=%s&" % msg_uuid in h.raw_path]


def outbound_row(bridge, number):
    rows = requests.get(bridge.api + "/api/v1/messages", params={"direction": "out",
                        "number": number}, auth=bridge.auth, timeout=10).json()["messages"]
    [row] = rows
    return requests.get(bridge.api + "/api/v1/messages/" + row["id"], auth=bridge.auth,
                        timeout=10).json()


def inbound_row(bridge, number):
    """The one message received from number (None before it came)."""
    rows = requests.get(bridge.api + "/api/v1/messages", params={"direction": "in",
                        "number": number}, auth=bridge.auth, timeout=10).json()["messages"]
    assert len(rows) <= 1, rows
    return rows[0] if rows else {"status": None}


# -- the stand-in answers as courier's own tests say courier answers ------------------------------


def test_the_stand_in_answers_courier_s_own_test_cases(courier):
    """handler_test.go's incoming cases, against the stand-in (a channel of its own, country US,
    address 2020, as in those tests)."""
    channel = courier.add_channel(address="2020", country="US", send_url="http://127.0.0.1:9/",
                                  username="u", password="p")
    base = "%s/c/kn/%s" % (courier.url, channel.uuid)
    valid = "/receive/?backend=NIG_MTN&sender=%2B2349067554729&message=Join&ts=1493735509" \
            "&id=asdf-asdf&to=24453"
    r = requests.post(base + valid, timeout=10)
    assert r.status_code == 200 and "Accepted" in r.text
    [data] = r.json()["data"]
    assert (data["urn"], data["text"], data["external_id"], data["received_on"]) == \
        ("tel:+2349067554729", "Join", "asdf-asdf", 1493735509)
    again = requests.post(base + valid, timeout=10)
    assert again.status_code == 200 and again.json()["data"][0]["msg_uuid"] == data["msg_uuid"]
    assert requests.get(base + valid, timeout=10).status_code == 405
    r = requests.post(base + "/receive/", timeout=10)
    assert r.status_code == 400 and "field 'sender' required" in r.text
    r = requests.post(base + valid.replace("1493735509", "0"), timeout=10)
    assert r.status_code == 400 and "field 'ts' required" in r.text
    r = requests.post(base + valid.replace("%2B2349067554729", "MTN"), timeout=10)
    assert r.status_code == 400 and "not a possible number" in r.text
    r = requests.post(base + valid.replace("message=Join", "message=").replace("id=asdf-asdf",
                                                                              "id=empty"),
                      timeout=10)
    assert r.status_code == 200 and r.json()["data"][0]["text"] == ""
    assert requests.get(base + "/status/", timeout=10).status_code == 400
    msg = "019a06fa-467d-7786-b9cb-5b42177cd53f"
    r = requests.get(base + "/status/?uuid=%s&status=0" % msg, timeout=10)
    assert r.status_code == 400 and "field 'status' required" in r.text
    r = requests.get(base + "/status/?uuid=%s&status=66" % msg, timeout=10)
    assert r.status_code == 200 and "ignoring unknown status '66'" in r.text
    for code, letter in ((4, "S"), (8, "S"), (1, "D"), (2, "E"), (16, "E")):
        r = requests.get(base + "/status?uuid=%s&status=%d" % (msg, code), timeout=10)
        assert r.status_code == 200 and r.json()["data"][0]["status"] == letter
    assert courier.statuses[msg] == ["S", "S", "D", "E", "E"]
    assert parse_number("0712345678", "TZ") == "+255712345678"
    with pytest.raises(ValueError, match="not a possible number"):
        parse_number("MPESA", "TZ")


def test_the_stand_in_builds_sends_as_courier_s_handler(courier):
    """handler_test.go's outgoing cases: the query the stand-in makes is courier's, byte for byte
    where the Go test fixes it (the text as UTF-16BE bytes, no charset)."""
    channel = courier.add_channel(address="2020", country="US",
                                  send_url="http://example.com/send?auth=foo",
                                  username="Username", password="Password")
    msg = "0191e180-7d60-7000-aded-7d8b151cbd5b"
    _, url = courier.build_send(channel, "+250788383383", "Hi \u263a", msg_uuid=msg,
                                high_priority=True)
    assert url.startswith("http://example.com/send?auth=foo&coding=2&dlr-mask=27&dlr-url=")
    query = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
    assert query["text"] == "%00H%00i%00+%26%3A" and "charset" not in query
    assert query["priority"] == "1" and query["from"] == "2020" and query["to"] == "%2B250788383383"
    assert requests.utils.unquote(query["dlr-url"]) == \
        "%s/c/kn/%s/status?uuid=%s&status=%%d" % (courier.url, channel.uuid, msg)


# -- inbound: modem -> bridge -> courier ----------------------------------------------------------


def test_an_sms_reaches_courier_with_its_own_time_and_the_sim_s_number(rapidpro):
    courier, channel, bridge = rapidpro
    sender = "+255700000001"
    scts = datetime(2024, 5, 2, 14, 31, 49, tzinfo=timezone(timedelta(hours=3)))
    [(hex_pdu, _)] = pdu.deliver_pdus(sender, "Habari 😀 ñ & a=b+c%", timestamp=scts,
                                      concat_reference=1)
    requests.post(bridge.control + "/inbound", json={"pdu": hex_pdu}, timeout=10)
    courier.wait_for(lambda: any(m.urn == "tel:" + sender for m in courier.msgs), DEADLINE)
    [msg] = [m for m in courier.msgs if m.urn == "tel:" + sender]
    row = wait_for(lambda: inbound_row(bridge, sender)["status"] == "delivered"
                   and inbound_row(bridge, sender), timeout=DEADLINE, message="delivered")
    assert msg.text == "Habari 😀 ñ & a=b+c%"
    assert msg.external_id == row["id"]
    assert msg.received_on == int(scts.timestamp()) == 1714649509
    assert "Message Accepted" in row["response"] and msg.uuid in row["response"]
    [hit] = [h for h in courier.hits if h.method == "POST" and msg.external_id.encode() in h.body]
    # the fields in a form body, none in the URL (no length limit, nothing in access logs)
    assert hit.content_type == "application/x-www-form-urlencoded"
    assert hit.raw_path == "/c/kn/%s/receive" % channel.uuid
    form = dict(urllib.parse.parse_qsl(hit.body.decode(), keep_blank_values=True))
    assert form == {"id": row["id"], "ts": "1714649509", "sender": sender,
                    "message": "Habari 😀 ñ & a=b+c%", "to": OWN_NUMBER, "backend": "modem"}


def test_an_sms_without_a_valid_timestamp_takes_the_time_it_came(rapidpro):
    courier, channel, bridge = rapidpro
    sender = "+255700000002"
    [(hex_pdu, _)] = pdu.deliver_pdus(sender, "no date", timestamp=datetime.now(timezone.utc),
                                      concat_reference=1)
    # SCTS month 13: the SMSC's date is unreadable, the message is kept without one
    before = time.time()
    bad = _with_month_13(hex_pdu)
    assert pdu.decode(bad).timestamp is None and pdu.decode(bad).text == "no date"
    requests.post(bridge.control + "/inbound", json={"pdu": bad}, timeout=10)
    courier.wait_for(lambda: any(m.urn == "tel:" + sender for m in courier.msgs), DEADLINE)
    [msg] = [m for m in courier.msgs if m.urn == "tel:" + sender]
    assert int(before) - 1 <= msg.received_on <= time.time() + 1


def _with_month_13(hex_pdu):
    """The same SMS-DELIVER with its SCTS month made 13 (semi-octets swapped: "31")."""
    data = bytearray(binascii.unhexlify(hex_pdu))
    i = 1 + data[0]                       # after the SMSC field
    i += 1                                # first octet
    digits = data[i]
    i += 2 + (digits + 1) // 2            # originating address: length, type, semi-octets
    i += 2                                # PID, DCS
    data[i + 1] = 0x31                    # SCTS: year, month, day, ... (month 13)
    return binascii.hexlify(bytes(data)).decode().upper()


def test_an_alphanumeric_sender_is_refused_once_and_kept_failed(rapidpro):
    courier, channel, bridge = rapidpro
    bridge.inject("MPESA", "Confirmed. You have received Tsh 5,000")
    row = wait_for(lambda: inbound_row(bridge, "MPESA")["status"] == "failed"
                   and inbound_row(bridge, "MPESA"), timeout=DEADLINE, message="failed")
    assert "HTTP 400" in row["last_error"] and "not a possible number" in row["last_error"]
    # No retry will come: the bridge's store offers it at no time to come (rather than a wait
    # longer than retry_cap, watching for one).
    store = Store(str(bridge.tmp_path / "store.sqlite3"))
    try:
        assert row["id"] not in [r["id"] for r in store.due_inbound(1e12, limit=1000)]
    finally:
        store.close()
    tries = [h for h in courier.hits if h.method == "POST" and row["id"].encode() in h.body]
    assert len(tries) == 1 and inbound_row(bridge, "MPESA")["attempts"] == 1
    assert not any("MPESA" in m.urn for m in courier.msgs)


def test_a_retry_after_a_lost_answer_is_the_same_message_to_courier(rapidpro):
    courier, channel, bridge = rapidpro
    sender = "+255700000003"
    courier.fail_after_accept = 1
    bridge.inject(sender, "once only")
    row = wait_for(lambda: inbound_row(bridge, sender)["status"] == "delivered"
                   and inbound_row(bridge, sender), timeout=DEADLINE, message="delivered")
    tries = [h for h in courier.hits if h.method == "POST" and row["id"].encode() in h.body]
    assert [h.status for h in tries] == [503, 200] and row["attempts"] == 2
    [msg] = [m for m in courier.msgs if m.urn == "tel:" + sender]
    assert msg.external_id == row["id"] and msg.uuid in row["response"]


# -- outbound: courier -> bridge -> modem, and the status that comes back ------------------------


def test_a_plain_send_is_sent_then_delivered(rapidpro):
    courier, channel, bridge = rapidpro
    number = "+255700000011"
    sent = courier.send(channel, number, "Simple Message")
    assert (sent.status, sent.body, sent.result) == (202, "0: Accepted for delivery", "wired")
    [entry] = wait_sent(bridge, number)
    assert decoded(entry) == ("Simple Message", "gsm7", 1) and gammu_text(entry) == "Simple Message"
    assert entry["status_report"] is True          # dlr-mask 27 asks for 1 and 2
    assert statuses(courier, sent.msg_uuid, 2) == ["S", "D"], explain(bridge)
    # the dlr-url came back as courier wrote it, only %d filled in
    assert [h.raw_path for h in status_hits(courier, sent.msg_uuid)] == [
        "/c/kn/%s/status?uuid=%s&status=%d" % (channel.uuid, sent.msg_uuid, code)
        for code in (8, 1)]
    row = outbound_row(bridge, number)
    assert row["sender"] == OWN_NUMBER and row["modem"] == "modem" and row["priority"] == 0


@pytest.mark.parametrize("legacy", [False, True], ids=["utf16be-no-charset", "utf8-charset"])
def test_unicode_with_emoji_in_both_of_courier_s_forms(rapidpro, legacy):
    courier, channel, bridge = rapidpro
    number = "+25570000002%d" % legacy
    text = "Habari 😀 👍🏽 ñ € 中文 🇹🇿"
    sent = courier.send(channel, number, text, legacy_unicode=legacy)
    assert sent.result == "wired", sent
    assert ("charset=utf8" in sent.url) is legacy and "coding=2" in sent.url
    [entry] = wait_sent(bridge, number)
    assert decoded(entry) == (text, "ucs2", 1) and gammu_text(entry) == text
    assert statuses(courier, sent.msg_uuid, 2) == ["S", "D"]


def test_a_1600_character_text_goes_out_whole(rapidpro):
    courier, channel, bridge = rapidpro
    number = "+255700000031"
    text = " ".join("w%04d" % i for i in range(267))[:1599] + "!"   # numbered: order shows
    assert len(text) == 1600
    sent = courier.send(channel, number, text)
    assert sent.result == "wired", sent
    [entry] = wait_sent(bridge, number)
    assert decoded(entry) == (text, "gsm7", 11) and gammu_text(entry) == text
    assert statuses(courier, sent.msg_uuid, 2) == ["S", "D"]


def test_the_longest_gsm_text_rapidpro_allows_goes_out_and_a_longer_one_fails(rapidpro):
    courier, channel, bridge = rapidpro
    number = "+255700000032"
    longest = ("Chanjo kesho saa tatu asubuhi. " * 133)[:4096]
    sent = courier.send(channel, number, longest)
    assert sent.result == "wired", sent
    [entry] = wait_sent(bridge, number)
    assert decoded(entry) == (longest, "gsm7", 27)
    too_long = courier.send(channel, "+255700000033", "a" * (27 * 153 + 1))
    assert (too_long.status, too_long.result) == (400, "failed")      # RapidPro: errored
    assert "Message too long: 28 parts, at most 27" in too_long.body
    assert sent_to(bridge, "+255700000033") == []


def test_a_reply_goes_ahead_of_the_bulk_queued_before_it(rapidpro):
    courier, channel, bridge = rapidpro
    bulk_numbers = ["+25570000004%d" % i for i in range(5)]
    reply_number = "+255700000049"
    bridge.faults(registration=0)          # the network is lost: the queue fills
    try:
        bulk = [courier.send(channel, n, "Bulk %d" % i) for i, n in enumerate(bulk_numbers)]
        wait_for(lambda: bridge.status()["modems"]["modem"].get("state") == "no network",
                 timeout=DEADLINE, message="the modem waiting for the network")
        reply = courier.send(channel, reply_number, "Your reply", high_priority=True)
        assert [s.result for s in bulk + [reply]] == ["wired"] * 6
        assert "priority=1" in reply.url
    finally:
        bridge.faults(registration=1)
    wait_for(lambda: all(sent_to(bridge, n) for n in bulk_numbers + [reply_number]),
             timeout=DEADLINE, message="all six sent")
    order = [e["to"] for e in bridge.sent() if e["to"] in bulk_numbers + [reply_number]]
    assert order[0] == reply_number and sorted(order[1:]) == sorted(bulk_numbers), order
    assert outbound_row(bridge, reply_number)["priority"] == 1


def test_every_bit_of_courier_s_dlr_mask(rapidpro):
    """27 = 1 + 2 + 8 + 16: delivered (D), undelivered (E), handed to the SMSC (S), refused by it
    (E); 4 (queued at the SMSC) is not asked for, so a pending report calls nothing back."""
    courier, channel, bridge = rapidpro
    try:
        bridge.faults(report_status=0x46)          # the network gives up: undelivered
        undelivered = courier.send(channel, "+255700000051", "expires")
        assert statuses(courier, undelivered.msg_uuid, 2) == ["S", "E"]

        bridge.faults(report_status=0x20)          # still trying: a pending report only
        pending = courier.send(channel, "+255700000052", "pending")
        wait_for(lambda: [r["status"] for r in outbound_row(bridge, "+255700000052")["reports"]]
                 == [0x20], timeout=DEADLINE, message="the pending report")
        assert statuses(courier, pending.msg_uuid, 1) == ["S"]
        assert [c["type"] for c in outbound_row(bridge, "+255700000052")["callbacks"]] == [8]

        bridge.faults(report_status=0, cms_error=1.0, cms_error_code=1)   # unassigned number
        refused = courier.send(channel, "+255700000053", "refused")
        assert refused.result == "wired"           # taken by the bridge; the modem refuses it
        assert statuses(courier, refused.msg_uuid, 1) == ["E"]
        assert [h.raw_path.rsplit("=", 1)[1] for h in status_hits(courier, refused.msg_uuid)] \
            == ["16"]
    finally:
        bridge.faults(report_status=0, cms_error=0.0, cms_error_code=500)
    assert statuses(courier, pending.msg_uuid, 1) == ["S"]     # still no callback 4
