"""Benchmarks of the bridge against the simulated modem (and Debian's gammu-smsd beside it).

Run `python -m bench [--quick] [--only NAME] [--json out.json]` from the repository root; see
bench/__main__.py. Everything runs on loopback, every loop is bounded in count and time, and
every process the harness starts is stopped by its PID.
"""
