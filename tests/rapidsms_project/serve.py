"""Serve the project with waitress on 127.0.0.1 and print the port it got.

Usage: python -m rapidsms_project.serve [port]   (port 0 or absent: any free port)

Binding port 0 and reporting the real port avoids racing another process for a
port picked in advance. The first line on stdout is "LISTENING <port>".
Several threads matter: RapidSMS's blocking router makes its reply's sendsms
request from inside the request that delivered the SMS.
"""

import sys

import waitress

from rapidsms_project.wsgi import application


def main(argv):
    port = int(argv[1]) if len(argv) > 1 else 0
    server = waitress.create_server(application, host="127.0.0.1", port=port, threads=8)
    print("LISTENING %s" % server.effective_port, flush=True)
    server.run()


if __name__ == "__main__":
    main(sys.argv)
