"""Test helper: serve a WSGI app with waitress on 127.0.0.1, in a thread, for one test.

waitress's close() is not safe from another thread while its loop runs (a worker thread may pull
the closed trigger), so the loop runs in small steps and shuts down in its own thread.
"""

import contextlib
import threading

import waitress
from waitress import wasyncore


@contextlib.contextmanager
def served(app, port=0):
    """Yields the base URL ("http://127.0.0.1:PORT") while `app` is served; port 0 picks one."""
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=4)
    stopping = threading.Event()

    def run():
        while not stopping.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%s" % server.effective_port
    finally:
        stopping.set()
        thread.join(5)
