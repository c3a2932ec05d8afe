"""The benchmark harness runs end to end in its tiny mode and writes its JSON.

No timing is asserted here (figures from a tiny run on a shared CI machine mean little); this only
checks that `python -m bench` still works against the current bridge and simulator, and that its
results have the shape bench/RESULTS.md and anyone's scripts rely on.
"""

import json
import os
import subprocess
import sys

import pytest

#: minutes of wall time: left out of the quick run (pytest -m "not stress")
pytestmark = pytest.mark.stress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUITES = "link,outbound,inbound,api,queue,footprint,load,gammu,kannel"


def test_tiny_run_writes_json_with_every_suite(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--tiny", "--only", SUITES,
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())

    assert data["mode"] == "tiny" and data["errors"] == {}
    assert {"nproc", "cpu", "memory_gb"} <= set(data["machine"])
    assert {"date", "commit", "baud", "sizes", "rows", "elapsed_s"} <= set(data)
    suites = data["suites"]
    assert set(suites) == set(SUITES.split(","))

    for delay in ("no_delay", "network_delay"):
        kinds = suites["outbound"][delay]["kinds"]
        assert set(kinds) == {"gsm160", "ucs2_70", "multi3"}
        for kind, figures in kinds.items():
            assert figures["failed_parts"] == 0
            assert figures["parts"] == figures["messages"] * (3 if kind == "multi3" else 1)
            for key in ("messages_per_s", "fraction_of_bound", "gap_ms_p50", "gap_ms_p99",
                        "host_ms_per_message", "modem_late_ms_per_message"):
                assert key in figures
    assert suites["outbound"]["pickup"]["samples"] >= 1

    latency = suites["inbound"]["latency"]
    for key in ("latency_ms_p50", "latency_ms_p99", "serial_transfer_ms",
                "above_serial_ms_p50", "above_serial_ms_p99"):
        assert latency[key] is not None
    assert suites["inbound"]["burst"]["messages"] > 0

    for endpoint in ("sendsms", "json"):
        assert suites["api"][endpoint]["statuses"] == {"202": suites["api"][endpoint]["requests"]}
        assert suites["api"][endpoint]["accept_ms_p99"] is not None
    assert suites["api"]["bulk"]["accepted_per_s"] > 0

    assert set(suites["queue"]["spread"]) == {"accept_ms_p50", "accept_ms_p99", "messages_per_s"}
    assert len(suites["queue"]["runs"]) >= 2

    for key in ("idle_cpu_percent", "rss_mb", "peak_rss_mb"):
        assert suites["footprint"][key] is not None

    for direction in ("modem_to_host", "host_to_modem"):
        assert suites["link"][direction]["bits_per_byte_min"] > 0

    load = suites["load"]
    for setup in ("one_modem", "pool"):
        for key in ("peak_rss_mb", "rss_mb"):
            assert load[setup][key] > 0
        for direction in ("outbound", "inbound"):
            assert load[setup][direction]["messages"] > 0
    assert load["one_modem"]["outbound"]["cpu_ms_per_message"] is not None
    assert load["pool"]["modems"] >= 2

    kannel = suites["kannel"]         # Kannel is optional too
    if "skipped" not in kannel:
        assert set(kannel["outbound"]) >= {"gsm160", "ucs2_70", "multi3"}
        for kind, figures in kannel["outbound"].items():
            assert figures["failed_parts"] == 0
            assert figures["parts"] == figures["messages"] * (3 if kind == "multi3" else 1)
        assert kannel["inbound"]["latency"]["latency_ms_p50"] is not None
        assert kannel["inbound"]["burst"]["messages"] > 0
        assert kannel["peak_rss_mb"] > 0
        assert any(row.get("kannel") is not None for row in data["versus_peers"])

    gammu = suites["gammu"]           # gammu-smsd is optional: without it the suite says so
    if "skipped" not in gammu:
        assert set(gammu["fast"]["no_delay"]["kinds"]) >= {"gsm160", "ucs2_70", "multi3"}
        assert gammu["fast"]["inbound"]["matched"] == gammu["fast"]["inbound"]["messages"]
        assert gammu["fast"]["pickup"]["samples"] >= 1
        assert data["versus_gammu"]

    # every row names its figure; the ones with a target carry a verdict
    assert data["rows"]
    for row in data["rows"]:
        assert row["metric"] and "value" in row
        if row["target"] is not None and row["value"] is not None:
            assert row["ok"] in (True, False)
    assert "share of line bound" in proc.stdout      # the table was printed
