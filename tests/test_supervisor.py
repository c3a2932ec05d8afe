"""supervisord really runs the bridge with the shipped program section, and brings it back after a
SIGKILL with nothing lost."""

import configparser
import os
import signal
import subprocess
import sys

import pytest

from bridgeproc import BridgeProcess, pid_alive, wait_for

#: minutes of wall time: left out of the quick run (pytest -m "not stress")
pytestmark = pytest.mark.stress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def supervisord_conf(tmp_path, bridge):
    """The shipped [program:gsmbridge] section, with only its paths pointed at this test."""
    shipped = configparser.RawConfigParser()
    shipped.read(os.path.join(REPO, "supervisor", "gsmbridge.conf"))
    program = dict(shipped["program:gsmbridge"])
    program["command"] = "%s -m gsmbridge run -c %s" % (sys.executable, bridge.ini)
    program["directory"] = str(tmp_path)
    program["stdout_logfile"] = str(tmp_path / "gsmbridge.log")
    program.pop("user")  # the test runs as whoever runs it
    program["environment"] = program["environment"] + ',PYTHONPATH="%s"' % REPO
    conf = configparser.RawConfigParser()
    conf["supervisord"] = {
        "logfile": str(tmp_path / "supervisord.log"),
        "pidfile": str(tmp_path / "supervisord.pid"),
        "nodaemon": "true",
        "childlogdir": str(tmp_path),
    }
    sock = str(tmp_path / "supervisor.sock")
    conf["unix_http_server"] = {"file": sock}
    conf["supervisorctl"] = {"serverurl": "unix://" + sock}
    conf["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"}
    conf["program:gsmbridge"] = program
    path = tmp_path / "supervisord.conf"
    with open(path, "w") as f:
        conf.write(f)
    return str(path)


def ctl(conf, *args):
    return subprocess.run([sys.executable, "-m", "supervisor.supervisorctl", "-c", conf, *args],
                          capture_output=True, text=True, timeout=30).stdout


def bridge_pid(conf):
    out = ctl(conf, "pid", "gsmbridge").strip()
    return int(out) if out.isdigit() and out != "0" else None


def test_supervisord_restarts_a_killed_bridge(tmp_path):
    from httpsink import HttpSink

    sink = HttpSink()
    bridge = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    conf = supervisord_conf(tmp_path, bridge)
    supervisord = subprocess.Popen([sys.executable, "-m", "supervisor.supervisord", "-c", conf],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = wait_for(lambda: bridge_pid(conf), timeout=30, message="supervisord to start it")
        bridge.proc = None
        wait_for(lambda: _up(bridge), timeout=30, message="bridge up under supervisord")
        assert bridge.send("+255700000001", "before the kill").status_code == 202

        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (bridge_pid(conf) or first) != first and bridge_pid(conf),
                          timeout=40, message="supervisord to restart the bridge")
        assert second != first and pid_alive(second)
        wait_for(lambda: _up(bridge), timeout=30, message="restarted bridge up")

        # The message accepted before the kill is still there and goes out.
        assert bridge.send("+255700000002", "after the kill").status_code == 202
        wait_for(lambda: {"before the kill", "after the kill"} <= {s["text"] for s in bridge.sent()},
                 timeout=30, message="both messages sent")

        # A clean stop through supervisorctl is a SIGTERM the bridge answers with exit 0.
        ctl(conf, "stop", "gsmbridge")
        wait_for(lambda: not pid_alive(second), timeout=25, message="bridge stopped")
        wait_for(lambda: "stopped: gsmbridge" in (tmp_path / "supervisord.log").read_text(),
                 timeout=10, message="supervisord to log the stop")
        assert "stopped: gsmbridge (exit status 0)" in (tmp_path / "supervisord.log").read_text()
    finally:
        supervisord.send_signal(signal.SIGTERM)
        try:
            supervisord.wait(30)
        except subprocess.TimeoutExpired:
            supervisord.kill()
        sink.stop()


def _up(bridge):
    try:
        return any(m.get("state") == "up" for m in bridge.status().get("modems", {}).values())
    except Exception:
        return False
