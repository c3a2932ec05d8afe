"""Joining concatenated SMS: order, duplicates, reference sizes, senders, expiry."""

import random
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from gsmbridge.codec import gsm7, pdu
from gsmbridge.codec.reassembly import GAP, Reassembler

T0 = datetime(2024, 2, 14, 19, 1, 3, tzinfo=timezone(timedelta(hours=3)))
LONG = "".join(f"word{i} " for i in range(100))  # 690 septets: 5 parts


def parts_of(text, *, sender="+255700000001", ref=42, bits=8, when=T0):
    pdus = [h for h, _ in pdu.deliver_pdus(sender, text, timestamp=when, concat_reference=ref, bits=bits)]
    return [(pdu.decode(h), h) for h in pdus]


def feed(r, parts, now=0.0):
    done = [m for d, h in parts if (m := r.add(d, h, now)) is not None]
    return done


def test_single_sms_comes_out_at_once():
    r = Reassembler()
    ((d, h),) = parts_of("hello")
    m = r.add(d, h, 0.0)
    assert (m.sender, m.text, m.parts, m.total, m.incomplete, m.pdus) == (
        "+255700000001", "hello", 1, 1, False, [h]
    )
    assert m.timestamp == T0
    assert r.pending() == 0


def test_parts_out_of_order():
    parts = parts_of(LONG)
    assert len(parts) == 5
    shuffled = parts[:]
    random.Random(3).shuffle(shuffled)
    r = Reassembler()
    done = feed(r, shuffled)
    assert len(done) == 1
    m = done[0]
    assert (m.text, m.parts, m.total, m.incomplete) == (LONG, 5, 5, False)
    assert m.pdus == [h for _, h in parts]  # in part order, not arrival order
    assert r.pending() == 0


def test_duplicates_are_ignored():
    parts = parts_of(LONG)
    r = Reassembler()
    assert feed(r, parts[:3] + parts[:3]) == []
    assert r.pending() == 1
    (m,) = feed(r, parts[3:] + parts[1:2])
    assert m.text == LONG and m.pdus == [h for _, h in parts]
    # the same part delivered again after the message was completed opens nothing new
    assert feed(r, parts[2:3]) == []
    assert r.pending() == 0
    assert r.expire(10_000.0) == []


def test_a_reused_reference_makes_a_new_message():
    r = Reassembler()
    (first,) = feed(r, parts_of(LONG, ref=9))
    (second,) = feed(r, parts_of(LONG.upper(), ref=9, when=T0 + timedelta(hours=1)))
    assert (first.text, second.text) == (LONG, LONG.upper())


def test_sixteen_bit_reference():
    parts = parts_of("ж" * 200, ref=0x1234, bits=16)
    assert parts[0][0].concat.bits == 16 and parts[0][0].concat.reference == 0x1234
    r = Reassembler()
    (m,) = feed(r, parts[::-1])
    assert m.text == "ж" * 200 and m.total == len(parts)


def test_eight_and_sixteen_bit_references_do_not_mix():
    # same sender, same reference number 5, same total: one 8-bit, one 16-bit
    a = parts_of("a" * 300, ref=5, bits=8)
    b = parts_of("b" * 300, ref=5, bits=16)
    assert len(a) == len(b) == 2
    r = Reassembler()
    assert feed(r, [a[0], b[1]]) == []
    assert r.pending() == 2
    done = feed(r, [b[0], a[1]])
    assert sorted(m.text for m in done) == ["a" * 300, "b" * 300]


def test_two_senders_with_the_same_reference_interleaved():
    a = parts_of(LONG, sender="+255700000001", ref=7)
    b = parts_of(LONG.upper(), sender="+255700000002", ref=7)
    interleaved = [p for pair in zip(a, b) for p in pair]
    r = Reassembler()
    done = feed(r, interleaved)
    assert {(m.sender, m.text) for m in done} == {
        ("+255700000001", LONG),
        ("+255700000002", LONG.upper()),
    }


def test_expiry_hands_out_what_arrived_marked_incomplete():
    parts = parts_of(LONG)
    r = Reassembler(timeout=600)
    feed(r, [parts[0], parts[2], parts[4]], now=100.0)
    assert r.expire(699.0) == []  # not yet
    (m,) = r.expire(700.0)
    assert m.incomplete and (m.parts, m.total) == (3, 5)
    assert m.pdus == [parts[0][1], parts[2][1], parts[4][1]]
    texts = [d.text for d, _ in parts]
    assert m.text == texts[0] + GAP + texts[2] + GAP + texts[4]
    assert r.pending() == 0
    assert r.expire(10_000.0) == []


def test_expiry_marks_missing_first_and_last_parts_once():
    parts = parts_of(LONG)
    r = Reassembler(timeout=60)
    feed(r, [parts[2]], now=0.0)
    (m,) = r.expire(60.0)
    assert m.text == GAP + parts[2][0].text + GAP
    assert (m.parts, m.total, m.incomplete) == (1, 5, True)


def test_expiry_counts_from_the_first_part():
    parts = parts_of(LONG)
    r = Reassembler(timeout=60)
    feed(r, parts[:1], now=0.0)
    feed(r, parts[1:2], now=50.0)
    (m,) = r.expire(61.0)
    assert m.parts == 2


def test_a_pair_cut_between_parts_by_the_sender_is_joined():
    # Some senders cut at 67 units / 153 septets without looking: the surrogate pair or the
    # escape pair straddles two parts.  Joining bodies before decoding repairs both.
    ucs2 = ("x" * 66 + "😀").encode("utf-16-be")
    first, second = ucs2[:134], ucs2[134:] + "end".encode("utf-16-be")
    gsm = [0x61] * 152 + [0x1B]  # ESC as the last septet of part 1, its code in part 2
    hexes = []
    for seq, body in ((1, first), (2, second)):
        ud = bytes([0x05, 0x00, 0x03, 0x66, 0x02, seq]) + body
        h = "00" "44" "0C91527500000010" "00" "08" "42204191103021" + f"{len(ud):02X}" + ud.hex()
        hexes.append(h)
    r = Reassembler()
    decoded = [pdu.decode(h) for h in hexes]
    assert decoded[0].text.endswith("\ufffd")  # on its own, part 1 ends in a lone surrogate
    (m,) = feed(r, list(zip(decoded, hexes))[::-1])
    assert m.text == "x" * 66 + "😀end"

    hexes = []
    for seq, septets in ((1, gsm), (2, [0x65] + gsm7.encode("uro"))):
        header = bytes([0x05, 0x00, 0x03, 0x67, 0x02, seq])
        ud = header + gsm7.pack(septets, 1)
        h = "00" "44" "0C91527500000010" "00" "00" "42204191103021" + f"{7 + len(septets):02X}" + ud.hex()
        hexes.append(h)
    (m,) = feed(r, [(pdu.decode(h), h) for h in hexes])
    assert m.text == "a" * 152 + "€uro"


@settings(max_examples=100, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("abc €[]жé😀👍🏽"), min_size=1, max_size=600),
    st.integers(0, 0xFFFF),
    st.sampled_from([8, 16]),
    st.randoms(use_true_random=False),
    st.integers(0, 3),
)
def test_any_order_with_duplicates_gives_the_text_back(text, ref, bits, rnd, dups):
    parts = parts_of(text, ref=ref, bits=bits)
    if len(parts) == 1:
        dups = 0  # a single SMS is a message each time: the store's dedup key catches those
    arrivals = parts + [rnd.choice(parts) for _ in range(dups)]
    rnd.shuffle(arrivals)
    r = Reassembler()
    done = feed(r, arrivals)
    assert len(done) == 1
    assert done[0].text == text and not done[0].incomplete
    assert r.pending() == 0


def test_parts_in_different_encodings_are_decoded_each_in_its_own():
    # some phones send one part in GSM 7-bit and the next in UCS-2
    ha, _ = pdu.encode_deliver("+1", "plain ", timestamp=T0, concat=pdu.Concat(3, 2, 1, 8))
    hb, _ = pdu.encode_deliver("+1", "жж", timestamp=T0 + timedelta(seconds=5), concat=pdu.Concat(3, 2, 2, 8))
    (m,) = feed(Reassembler(), [(pdu.decode(hb), hb), (pdu.decode(ha), ha)])
    assert m.text == "plain жж"
    assert m.timestamp == T0  # the earliest part's


def test_a_deliver_made_by_hand_without_a_body_uses_its_text():
    d = pdu.Deliver(
        sender="+1", text="by hand", data=b"", encoding="gsm7", timestamp=T0,
        concat=pdu.Concat(1, 2, 1, 8), smsc=None, pid=0, dcs=0, message_class=None, udh=b"",
        status_report_indication=False,
    )
    r = Reassembler(timeout=1)
    assert r.add(d, "PDU1", 0.0) is None
    (m,) = r.expire(1.0)
    assert m.text == "by hand" + GAP
