"""Test helper: real RabbitMQ and Redis servers from the Debian packages, on loopback only.

Each server runs in its own temporary directory on ports picked for it (below the ephemeral
range, see `bridgeproc.free_port`), is stopped by its PID, and can be stopped and started again
on the same port with the same data: what "the broker restarts mid-stream" needs.

RabbitMQ needs more care than most servers:

- The Debian wrapper `/usr/sbin/rabbitmq-server` runs the real script through `su rabbitmq`,
  which resets HOME and sends the output to /var/log/rabbitmq. We run the real script
  (/usr/lib/rabbitmq/bin/rabbitmq-server) ourselves, as the rabbitmq user when we are root,
  with an environment of our own. Its directories must then be owned by that user, and must not
  sit under pytest's tmp_path (whose parent directories are private to root): they live in a
  directory of their own under the system temp dir.
- Erlang nodes find each other through epmd, one per port. Left alone, the first node would
  start a shared epmd on 4369 that outlives every test; here each server starts its own epmd on
  its own port (ERL_EPMD_PORT, listening on 127.0.0.1 only), so parallel test workers never
  meet, and stops it with the server.
- The distribution port and the AMQP listener are bound to 127.0.0.1 as well.
- SIGTERM to the script stops the node cleanly (the script passes it on to the VM, which runs
  its orderly shutdown); `kill()` sends SIGKILL to the VM itself, for crash tests.

Redis runs as the current user with `appendonly yes` and `appendfsync always`: the settings a
cluster needs so that a message Redis has answered for survives a Redis restart.
"""

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import amqp
import pytest
import redis

from bridgeproc import free_port

RABBITMQ_SCRIPT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/lib/rabbitmq/sbin")


def _free_ports(count):
    """`count` distinct free ports."""
    ports = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _script(name):
    """The real RabbitMQ script, not Debian's `su` wrapper in /usr/sbin."""
    for folder in RABBITMQ_SCRIPT_DIRS:
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/lib/rabbitmq/bin")
    if found is None:
        pytest.skip("%s is not installed (apt-get install rabbitmq-server)" % name)
    return found


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class _Server:
    """Start, stop, kill and restart one server process; subclasses say how."""

    name = "server"

    def __init__(self):
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_started(self, what):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited with %s while starting; its log:\n%s"
                               % (what, self.proc.returncode, self.log_tail()))

    def log_tail(self, size=4000):
        text = ""
        for path in self.log_files():
            with contextlib.suppress(OSError):
                text += "==> %s <==\n%s\n" % (path, Path(path).read_text(errors="replace")[-size:])
        return text

    def restart(self, pause=0.0):
        """Stop cleanly, wait `pause` seconds, start again on the same port with the same data."""
        self.stop()
        time.sleep(pause)
        self.start()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()


class RabbitMQ(_Server):
    """One RabbitMQ node: `url` carries a user and password of its own (not guest)."""

    name = "rabbitmq"

    def __init__(self, *, startup_timeout=90):
        super().__init__()
        self.startup_timeout = startup_timeout
        self.port, self.dist_port, self.epmd_port = _free_ports(3)
        self.node = "gsmtest%d_%s@localhost" % (os.getpid(), secrets.token_hex(3))
        self.user = "gsmtest"
        self.password = secrets.token_hex(8)
        self.url = "amqp://%s:%s@127.0.0.1:%d//" % (self.user, self.password, self.port)
        self.root = Path(tempfile.mkdtemp(prefix="gsmbridge-rabbitmq-"))
        self.epmd = None
        self._layout()

    def _layout(self):
        root = self.root
        for sub in ("home", "mnesia", "log"):
            (root / sub).mkdir()
        (root / "enabled_plugins").write_text("[].\n")
        (root / "rabbitmq-env.conf").write_text("")          # ignore /etc/rabbitmq's
        (root / "rabbitmq.conf").write_text(
            "listeners.tcp.default = 127.0.0.1:%d\n"
            "default_user = %s\n"
            "default_pass = %s\n"
            "loopback_users = none\n"
            # a test machine's disk may be nearly full; the default 50 MB limit would block
            # every publisher with no word in the test's output
            "disk_free_limit.absolute = 1MB\n"
            "log.file.level = info\n"
            "log.console = false\n" % (self.port, self.user, self.password))
        cookie = root / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        self._owner = None
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("rabbitmq")
            except KeyError:
                pytest.skip("no rabbitmq user (apt-get install rabbitmq-server)")
            self._owner = entry
            for path in [root, *root.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def env(self):
        root = self.root
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(root / "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(root / "rabbitmq.pid"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            # the node must not start (or look for) a shared epmd; ours runs on its own port
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS":
                "-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}",
        }
        return env

    def _popen(self, argv, log_name):
        log = open(self.root / log_name, "ab")
        kwargs = {}
        if self._owner is not None:
            kwargs = dict(user=self._owner.pw_uid, group=self._owner.pw_gid, extra_groups=[])
        try:
            return subprocess.Popen(argv, env=self.env(), cwd=self.root, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, **kwargs)
        finally:
            log.close()

    def log_files(self):
        return [self.root / "startup.log", *sorted((self.root / "log").glob("*.log"))]

    def _start_epmd(self):
        if self.epmd is not None and self.epmd.poll() is None:
            return
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        self.epmd = self._popen([epmd, "-port", str(self.epmd_port)], "epmd.log")
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", self.epmd_port)) == 0:
                    return
            if self.epmd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("epmd did not start on port %d" % self.epmd_port)
            time.sleep(0.05)

    def start(self):
        assert not self.running, "already running"
        self._start_epmd()
        with contextlib.suppress(FileNotFoundError):
            (self.root / "rabbitmq.pid").unlink()
        self.proc = self._popen([_script("rabbitmq-server")], "startup.log")
        self._wait_ready()

    def _wait_ready(self):
        """Up once an AMQP client can log in (the listener opens late in the boot)."""
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._check_started("rabbitmq-server")
            try:
                conn = amqp.Connection("127.0.0.1:%d" % self.port, userid=self.user,
                                       password=self.password, connect_timeout=1)
                conn.connect()
                conn.close()
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("rabbitmq did not come up in %ss; its log:\n%s"
                                       % (self.startup_timeout, self.log_tail()))
                time.sleep(0.2)

    @property
    def vm_pid(self):
        """The Erlang VM's PID (the script's child), from the PID file RabbitMQ writes."""
        with contextlib.suppress(OSError, ValueError):
            return int((self.root / "rabbitmq.pid").read_text().strip())
        return None

    def stop(self, timeout=60):
        """SIGTERM: the script passes it on to the VM, which shuts the node down in order."""
        if not self.running:
            return
        vm = self.vm_pid
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        if vm is not None and not _wait_gone(vm, 10):
            os.kill(vm, signal.SIGKILL)
            _wait_gone(vm, 10)

    def kill(self):
        """SIGKILL to the VM, as a crash would; the script then exits by itself."""
        if not self.running:
            return
        vm = self.vm_pid
        if vm is not None and _pid_alive(vm):
            os.kill(vm, signal.SIGKILL)
            _wait_gone(vm, 10)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def ctl(self, *args, timeout=60):
        """Run rabbitmqctl against this node (slow: its own Erlang VM boots first)."""
        argv = [_script("rabbitmqctl"), "-n", self.node, *args]
        kwargs = {}
        if self._owner is not None:
            kwargs = dict(user=self._owner.pw_uid, group=self._owner.pw_gid, extra_groups=[])
        return subprocess.run(argv, env=self.env(), cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              **kwargs)

    def close(self):
        """Stop the node and its epmd, and remove its directory."""
        try:
            self.stop()
        finally:
            if self.epmd is not None and self.epmd.poll() is None:
                self.epmd.send_signal(signal.SIGTERM)
                try:
                    self.epmd.wait(10)
                except subprocess.TimeoutExpired:
                    self.epmd.kill()
                    self.epmd.wait(10)
            shutil.rmtree(self.root, ignore_errors=True)


class Redis(_Server):
    """One redis-server with a password, AOF on and fsynced before every answer."""

    name = "redis"

    def __init__(self, directory, *, startup_timeout=20):
        super().__init__()
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.password = secrets.token_hex(8)
        self.url = "redis://:%s@127.0.0.1:%d/0" % (self.password, self.port)
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def log_files(self):
        return [self.dir / "redis.log"]

    def start(self):
        assert not self.running, "already running"
        binary = (shutil.which("redis-server")
                  or shutil.which("redis-server", path="/usr/sbin:/usr/bin"))
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", "always",
                "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                "--requirepass", self.password, "--logfile", str(self.dir / "redis.log")]
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        while True:
            self._check_started("redis-server")
            try:
                client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                                     socket_timeout=1, socket_connect_timeout=1)
                try:
                    if client.ping():
                        return
                finally:
                    client.close()
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("redis did not come up in %ss; its log:\n%s"
                                       % (self.startup_timeout, self.log_tail()))
                time.sleep(0.05)

    def stop(self, timeout=30):
        """SIGTERM: Redis flushes its AOF and exits."""
        if not self.running:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        if not self.running:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self):
        self.stop()


@pytest.fixture(scope="module")
def rabbitmq():
    """One RabbitMQ node for the whole test module (it takes seconds to boot)."""
    with RabbitMQ() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """One Redis for the whole test module."""
    with Redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
