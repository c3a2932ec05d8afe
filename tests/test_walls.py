"""The walls of docs/architecture.md hold: no import crosses one, and no import cycle exists."""

import textwrap

import walls


def test_no_import_crosses_a_wall():
    assert walls.crossings() == []


def test_no_import_cycles():
    assert walls.cycles() == []


def write(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_check_sees_each_kind_of_crossing(tmp_path):
    root = tmp_path / "gsmbridge"
    write(root, {
        "__init__.py": "",
        "codec/__init__.py": "from .pdu import decode\n",
        "codec/pdu.py": "def decode():\n    from gsmbridge.store import Store\n",
        "modem/__init__.py": "",
        "modem/errors.py": "",
        "modem/driver.py": "from ..codec import pdu\n",
        "simulator/__init__.py": "",
        "simulator/machine.py": "from ..modem import errors\nfrom gsmbridge.modem.driver import GsmModem\n",
        "store/__init__.py": "import sqlite3\n",
        "web/__init__.py": "from .kannel import view\n",
        "web/kannel.py": "from gsmbridge.web import helper\nimport gsmbridge.modem.driver\n",
        "forwarder.py": "import sqlite3\n",
    })
    found = walls.crossings(root)
    text = "\n".join(found)
    assert "gsmbridge.codec.pdu imports gsmbridge.store.Store" in text
    assert "gsmbridge.simulator.machine imports gsmbridge.modem.driver.GsmModem" in text
    assert "gsmbridge.web.kannel imports gsmbridge.modem.driver (gsmbridge.web never imports gsmbridge.modem)" in text
    assert "gsmbridge.forwarder imports sqlite3" in text
    # What is allowed stays allowed: the modem on the codec, the simulator on the error table,
    # the store on sqlite3.
    assert not any("modem.driver imports gsmbridge.codec" in f for f in found)
    assert not any("machine imports gsmbridge.modem.errors" in f for f in found)
    assert not any("store imports sqlite3" in f for f in found)
    assert len(found) == 4, found
    # web/__init__ imports kannel, and kannel takes a name from web/__init__: a cycle.
    assert walls.cycles(root) == [["gsmbridge.web", "gsmbridge.web.kannel", "gsmbridge.web"]]
