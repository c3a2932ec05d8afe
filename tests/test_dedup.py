"""The dedup key of a received PDU: the same SMS, however it comes again, has the same key."""

from datetime import datetime, timezone

from gsmbridge.codec import deliver_pdus, pdu_key

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def deliver(sender="+255700000001", text="hello", timestamp=T0, **options):
    [(hex_pdu, _)] = deliver_pdus(sender, text, timestamp=timestamp, concat_reference=1,
                                  **options)
    return hex_pdu


def test_the_same_tpdu_through_another_smsc_has_the_same_key():
    via_one, via_two = deliver(smsc="+255754000001"), deliver(smsc="+25575499")
    assert via_one != via_two
    assert pdu_key(via_one) == pdu_key(via_two) == pdu_key(deliver())
    assert pdu_key(" %s\r\n" % via_one.lower()) == pdu_key(via_one)


def test_a_different_sender_time_or_text_is_another_key():
    pdus = [deliver(), deliver(sender="+255700000002"), deliver(timestamp=T0.replace(second=10)),
            deliver(text="hellp")]
    assert len({pdu_key(p) for p in pdus}) == 4


def test_what_is_not_hex_still_gets_a_key():
    assert len(pdu_key("zz not a pdu")) == 40
    assert pdu_key("0") == pdu_key("0")
