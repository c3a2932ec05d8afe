"""Everything that speaks AT to a GSM modem: codec, AT engine, driver and the simulated modem.

Nothing in here imports the rest of gsmbridge: the modem layer stands on its own.
"""
