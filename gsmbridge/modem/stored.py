"""Reading the modem's message storage: one slot (AT+CMGR) or all of it (AT+CMGL=4).

Only reading: nothing here deletes, so what is read stays on the SIM until the receiver's
``done`` says the caller committed it.  Stored outgoing messages (stat 2 and 3) are left
alone.  Listings are not trusted blindly: some modems' AT+CMGL misses messages or fails
outright (gammu calls it BROKEN_CMGL), so the count from AT+CPMS? is checked and, if short,
the slots are read one by one.

Which storage is read is the setup's to know and switch (``Setup.use_storage``).
"""

from .errors import ModemError
from .fields import after_colon, split_params, to_int
from .incoming import incoming


def read_slot(port, setup, storage, index):
    """AT+CMGR=<index> -> Incoming, or None for an empty slot or a stored outgoing one."""
    storage = setup.use_storage(storage)
    try:
        lines = port.command("AT+CMGR=%d" % index)
    except ModemError as exc:
        if exc.code == 321:             # gone already (read and deleted by a sweep)
            return None
        raise
    for response in lines:
        if response.line.upper().startswith("+CMGR"):
            stat = to_int(split_params(after_colon(response.line))[0])
            if response.body is None or stat in (2, 3):
                return None
            return incoming(response.body, index=index, storage=storage)
    return None


def list_stored(port, setup, log):
    """Every received message in the storage we read, as Incoming items."""
    storage = setup.use_storage(setup.own_storage)
    items, listed = [], 0
    try:
        lines = port.command("AT+CMGL=4", timeout=max(port.command_timeout, 30.0))
    except ModemError as exc:
        log.warning("%s: AT+CMGL=4 failed (%s); reading slot by slot", port.url, exc)
        lines = None
    if lines is not None:
        for response in lines:
            if not response.line.upper().startswith("+CMGL"):
                continue
            listed += 1
            fields = split_params(after_colon(response.line))
            index, stat = to_int(fields[0]), to_int(fields[1]) if len(fields) > 1 else None
            if index is None or response.body is None or stat in (2, 3):
                continue
            items.append(incoming(response.body, index=index, storage=storage))
    # Some modems' listings miss messages (gammu's BROKEN_CMGL): compare with the count.
    used = setup.count_stored()
    if lines is None or (used is not None and used > listed):
        seen = {item.index for item in items}
        items += _scan_slots(port, setup, seen, used)
    return items


def _scan_slots(port, setup, seen, used):
    """AT+CMGR on every slot (0 and 1 based modems alike), for modems whose CMGL fails."""
    total = setup.storage_used[1] if setup.storage_used and setup.storage_used[1] else 30
    found = []
    for index in range(0, total + 1):
        if index in seen:
            continue
        try:
            item = read_slot(port, setup, None, index)
        except ModemError:
            continue
        if item is not None:
            found.append(item)
        if used is not None and len(seen) + len(found) >= used:
            break
    return found
