"""Runs the RapidSMS project in tests/rapidsms_project behind a real WSGI server, for end-to-end tests.

RapidSMS runs in a subprocess (waitress on 127.0.0.1, a port of its own choosing) so that Django's
global settings never leak into the test process. Its database is a fresh SQLite file in the
directory it is given, migrated with manage.py before it serves.

    with RapidSMS(tmp_path, sendsms_url=..., username=..., password=...) as rapidsms:
        rapidsms.backend_url   # http://127.0.0.1:<port>/backend/kannel-backend/
"""

import importlib.metadata
import os
import re
import subprocess
import sys
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "rapidsms_project")

RAPIDSMS_VERSION = "2.2.0"
INSTALL_HINT = "install the test extra: pip install -e '.[test]'"


def check_installed():
    """Return None if RapidSMS 2.2.0 and a Django 4.x are installed, else what is wrong.

    Uses package metadata only, so Django is never imported into the test process.
    """
    try:
        rapidsms = importlib.metadata.version("RapidSMS")
    except importlib.metadata.PackageNotFoundError:
        return "RapidSMS is not installed; " + INSTALL_HINT
    if rapidsms != RAPIDSMS_VERSION:
        return "RapidSMS %s is installed, the test needs %s; %s" % (
            rapidsms, RAPIDSMS_VERSION, INSTALL_HINT)
    try:
        django = importlib.metadata.version("Django")
    except importlib.metadata.PackageNotFoundError:
        return "Django is not installed; " + INSTALL_HINT
    if not django.startswith("4."):
        return "Django %s is installed; RapidSMS %s needs Django>=4.2,<5; %s" % (
            django, RAPIDSMS_VERSION, INSTALL_HINT)
    return None


class RapidSMSError(RuntimeError):
    """RapidSMS did not start; the message includes the end of its log."""


class RapidSMS:
    """One RapidSMS instance: migrate, serve, wait until it answers, stop by PID."""

    backend_path = "/backend/kannel-backend/"

    def __init__(self, workdir, *, sendsms_url, username, password, python=sys.executable):
        self.workdir = str(workdir)
        self.python = python
        self.db_path = os.path.join(self.workdir, "rapidsms.sqlite3")
        self.log_path = os.path.join(self.workdir, "rapidsms.log")
        self.env = dict(os.environ)
        self.env.update({
            "PYTHONPATH": os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": "rapidsms_project.settings",
            "RAPIDSMS_E2E_DB": self.db_path,
            "RAPIDSMS_E2E_SENDSMS_URL": sendsms_url,
            "RAPIDSMS_E2E_SENDSMS_USERNAME": username,
            "RAPIDSMS_E2E_SENDSMS_PASSWORD": password,
            "PYTHONUNBUFFERED": "1",
        })
        self.process = None
        self.port = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    @property
    def backend_url(self):
        """Where the bridge forwards inbound SMS (Kannel style); the trailing slash is required."""
        return self.url + self.backend_path

    def start(self, timeout=60.0):
        problem = check_installed()
        if problem:
            raise RapidSMSError(problem)
        os.makedirs(self.workdir, exist_ok=True)
        migrate = subprocess.run(
            [self.python, os.path.join(PROJECT, "manage.py"), "migrate", "--noinput"],
            cwd=self.workdir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=timeout)
        if migrate.returncode != 0:
            raise RapidSMSError("manage.py migrate failed (%d):\n%s"
                                % (migrate.returncode, migrate.stdout[-4000:]))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [self.python, "-m", "rapidsms_project.serve"],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, timeout):
        """Wait for the LISTENING line, then for the backend view to answer an HTTP request."""
        deadline = time.monotonic() + timeout
        while self.port is None:
            match = re.search(r"^LISTENING (\d+)$", self.log(), re.M)
            if match:
                self.port = int(match.group(1))
                break
            self._check_alive()
            if time.monotonic() > deadline:
                raise RapidSMSError("RapidSMS did not start listening:\n" + self.log()[-4000:])
            time.sleep(0.05)
        while True:
            self._check_alive()
            try:
                # Any answer will do (404 here): it does not touch the router or the database.
                requests.get(self.url + "/", timeout=5)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise RapidSMSError("RapidSMS does not answer at %s:\n%s"
                                        % (self.backend_url, self.log()[-4000:]))
                time.sleep(0.05)

    def _check_alive(self):
        if self.process.poll() is not None:
            raise RapidSMSError("RapidSMS exited with %s:\n%s"
                                % (self.process.returncode, self.log()[-4000:]))

    def log(self):
        """Everything RapidSMS printed so far (its router logs each incoming and outgoing message)."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        """Stop the server we started, by its PID."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
