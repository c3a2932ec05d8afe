"""Known PDUs and what they must decode to.

The first three are the classic public examples (the "hellohello" SMS-DELIVER and SMS-SUBMIT
and the "How are you?" SMS-DELIVER that most PDU tutorials and decoders quote).  The others
are written out field by field in the shape modems hand them over in +CMGR/+CMGL/+CMT/+CDS
(Huawei E173 and SIMCom SIM800 both put the SMSC field in front), to cover what the networks
our users sit on actually send: alphanumeric senders, national numbers, UCS-2 with emoji, 16-bit
concatenation references, WAP push, flash and voicemail-indication messages, status reports.
Each one is also checked against python-gammu in test_pdu.py, so the expectations below are
not only ours.
"""

from datetime import datetime, timedelta, timezone

EAT = timezone(timedelta(hours=3))  # East Africa Time, +03:00
SENT = datetime(2024, 2, 14, 19, 1, 3, tzinfo=EAT)


def sample(name, pdu, expect, *, incoming=True, with_smsc=True):
    return {"name": name, "pdu": pdu, "incoming": incoming, "with_smsc": with_smsc, "expect": expect}


SAMPLES = [
    sample(
        "classic hellohello deliver",
        "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
        {
            "type": "Deliver",
            "smsc": "+27381000015",
            "sender": "27838890001",  # type of address C8: subscriber number, no "+"
            "text": "hellohello",
            "encoding": "gsm7",
            "timestamp": datetime(1999, 3, 29, 15, 16, 59, tzinfo=timezone(timedelta(hours=2))),
        },
    ),
    sample(
        "classic how are you deliver",
        "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07",
        {
            "type": "Deliver",
            "smsc": "+31624000000",
            "sender": "+31641600986",
            "text": "How are you?",
            # zone octet 08: the sign bit with zero quarters
            "timestamp": datetime(2002, 8, 26, 19, 37, 41, tzinfo=timezone.utc),
        },
    ),
    sample(
        "classic hellohello submit, relative validity AA (4 days)",
        "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
        {
            "type": "Submit",
            "smsc": None,
            "recipient": "+46708251358",
            "text": "hellohello",
            "validity": timedelta(days=4),
            "reference": 0,
            "status_report_request": False,
        },
        incoming=False,
    ),
    sample(
        "alphanumeric sender (mobile money)",
        "0791525557040050040BD0CD16B4380D0200004220419110302132C3B7DB9C96B7CB6417683947C75830"
        "18CC058381E665371D447F83944FA413447C1641B05B4C36A3D56C371C",
        {
            "sender": "M-PESA",
            "smsc": "+255575400005",
            "text": "Confirmed. Ksh1,000.00 sent to JOHN DOE 0712345678",
            "timestamp": SENT,
        },
    ),
    sample(
        "alphanumeric sender whose length counts whole octets (14 for 7 characters)",
        "0791525557040050040ED0D637393C7EB70100004220419110302114D9775D0E1287D961F7B80C4ACF4135170C06",
        {"sender": "Vodacom", "text": "Your balance is 5.00"},
    ),
    sample(
        "national number (type of address A1)",
        "0791527500000000040AA170214365870000422041911030210ACD72990E0AD3413118",
        {"sender": "0712345678", "smsc": "+255700000000", "text": "Meet at 10"},
    ),
    sample(
        "UCS-2 part 1 of 2 with a 16-bit concatenation reference",
        "07917283010010F5440C915275000000100008422041911030212106080412340201"
        "041F04400438043204350442002C0020043C0438044000210020",
        {
            "text": "Привет, мир! ",
            "encoding": "ucs2",
            "concat": (0x1234, 2, 1, 16),
            "udh": bytes.fromhex("080412340201"),
        },
    ),
    sample(
        "GSM 7-bit part 2 of 3, 8-bit reference, one fill bit after the header",
        "07917283010010F5440C9152750000001000004220419110302117050003A70302E6E5F1DB4D06C1C3723A885EC6D301",
        {"text": "second part text", "encoding": "gsm7", "concat": (0xA7, 3, 2, 8)},
    ),
    sample(
        "WAP push: 8-bit class 1 with an application port header",
        "07917283010010F5440C9152750000001000F5422041911030210E0605040B8423F001060403AE81EA",
        {
            "encoding": "8bit",
            "text": "",
            "data": bytes.fromhex("01060403AE81EA"),
            "message_class": 1,
            "concat": None,
            "udh": bytes.fromhex("05040B8423F0"),
        },
    ),
    sample(
        "flash SMS (class 0)",
        "07917283010010F5040C91527500000010001042204191103021054666708A04",
        {"text": "FLASH", "message_class": 0, "dcs": 0x10},
    ),
    sample(
        "voicemail indication, discard group (DCS C8)",
        "07917283010010F5040C9152750000001000C8422041911030210F3190BB7C07D9DFE971B91D4EB301",
        {"text": "1 new voicemail", "encoding": "gsm7", "message_class": None},
    ),
    sample(
        "voicemail indication, store group, UCS-2 (DCS E8)",
        "07917283010010F5040C9152750000001000E8422041911030211E0413043E043B043E0441043E04320430044F0020"
        "043F043E044704420430",
        {"text": "Голосовая почта", "encoding": "ucs2"},
    ),
    sample(
        "negative time zone (-03:00)",
        "07915521010000F0040D91551198765432F100004220419110302902CF34",
        {
            "sender": "+5511896745231",
            "smsc": "+55121000000",
            "text": "Oi",
            "timestamp": datetime(2024, 2, 14, 19, 1, 3, tzinfo=timezone(timedelta(hours=-3))),
        },
    ),
    sample(
        "UCS-2 with emoji and a skin-tone modifier (surrogate pairs)",
        "07917283010010F5040C915275000000100008422041911030211A0048006100620061007200690020D83DDE00"
        "D83DDC4DD83CDFFD",
        {"text": "Habari 😀👍🏽", "encoding": "ucs2"},
    ),
    sample(
        "status report: delivered",
        "07917283010010F5062A0C91527500000010422041911030214220419120302100",
        {
            "type": "StatusReport",
            "reference": 0x2A,
            "recipient": "+255700000001",
            "timestamp": SENT,
            "discharge": SENT + timedelta(minutes=1),
            "status": 0x00,
            "delivered": True,
            "failed": False,
            "final": True,
        },
    ),
    sample(
        "status report: validity period expired (permanent error 0x46)",
        "07917283010010F5062B0C91527500000010422041911030214220519110302146",
        {
            "type": "StatusReport",
            "reference": 0x2B,
            "status": 0x46,
            "discharge": SENT + timedelta(days=1),
            "delivered": False,
            "failed": True,
            "final": True,
        },
    ),
    sample(
        "status report: SME busy, still trying (temporary error 0x21)",
        "07917283010010F5062C0C91527500000010422041911030214220419120302121",
        {"type": "StatusReport", "status": 0x21, "pending": True, "final": False, "delivered": False},
    ),
    sample(
        "status report with a TP-PI and the optional fields after the status",
        "07917283010010F5062D0C9152750000001042204191103021422041912030210003000000",
        {"type": "StatusReport", "reference": 0x2D, "status": 0x00, "delivered": True},
    ),
    sample(
        "status report without the SMSC field",
        "062E0C91527500000010422041911030214220419120302100",
        {"type": "StatusReport", "reference": 0x2E, "smsc": None, "recipient": "+255700000001"},
        with_smsc=False,
    ),
    sample(
        "stored submit with an SMSC field of type only (0181), status report requested",
        "018131050C915275000000100000A702C834",
        {
            "type": "Submit",
            "smsc": None,
            "reference": 5,
            "status_report_request": True,
            "validity": timedelta(days=1),
            "text": "Hi",
        },
        incoming=False,
    ),
    sample(
        "submit with an absolute validity period",
        "0019060C9152750000001000004220419110302102C834",
        {"type": "Submit", "validity": None, "validity_until": SENT, "text": "Hi"},
        incoming=False,
    ),
    sample(
        "compressed body (DCS 20) is handed over as 8-bit data",
        "07917283010010F5040C9152750000001000204220419110302103ABCDEF",
        {"encoding": "8bit", "text": "", "data": bytes.fromhex("ABCDEF")},
    ),
]
