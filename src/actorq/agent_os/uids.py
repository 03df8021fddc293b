"""One host uid per VM, so that the kernel keeps VMs apart wherever it counts per user.

Per-user limits (processes, inotify instances, user namespaces), the files a VM owns on the host and
the host-side file actions done with the VM's uid all separate VMs only if each has its own. A VM's
uid comes from a range no real account uses (``$ACTORQ_VM_UIDS``, default ``1879048192-1895825407``,
the 2**24 ids after systemd's container range) at a place hashed from its actor id, and is claimed
in ``<data>/vm-uids/<uid>`` with ``O_EXCL``; a claim held by another actor moves it to the next id.
The claim is kept: the VM's files on disk stay owned by that uid, across sleeps and restarts.

Must not import the core or storage.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DEFAULT_RANGE = (1_879_048_192, 1_895_825_407)


def uid_range() -> tuple[int, int]:
    raw = os.environ.get("ACTORQ_VM_UIDS")
    if not raw:
        return DEFAULT_RANGE
    try:
        lo, hi = (int(x) for x in raw.split("-", 1))
    except ValueError:
        raise ValueError("ACTORQ_VM_UIDS is a range such as 1879048192-1895825407") from None
    if not 1000 <= lo <= hi < 2**31:
        raise ValueError("ACTORQ_VM_UIDS must lie within 1000..2**31-1")
    return lo, hi


def claim(data_dir: Path, actor_id: str) -> int:
    """The VM's uid: its existing claim, or a new one."""
    lo, hi = uid_range()
    claims = data_dir / "vm-uids"
    claims.mkdir(mode=0o700, parents=True, exist_ok=True)
    span = hi - lo + 1
    start = int.from_bytes(hashlib.blake2b(actor_id.encode(), digest_size=8).digest(), "big") % span
    mine = actor_id.encode()
    for i in range(span):
        uid = lo + (start + i) % span
        path = claims / str(uid)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            try:
                if path.read_bytes() == mine:
                    return uid
            except OSError:
                pass
            continue
        try:
            os.write(fd, mine)
        finally:
            os.close(fd)
        return uid
    raise RuntimeError("every uid of ACTORQ_VM_UIDS is claimed")
