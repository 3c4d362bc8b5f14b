"""Child processes that die with their parent: Linux's parent-death signal (`prctl(PR_SET_PDEATHSIG)`).

`die_with_parent(signum)` returns a `preexec_fn` for `subprocess.Popen`: the child asks the kernel to send
it `signum` when its parent goes, even when the parent is killed with SIGKILL and runs no cleanup.

Limits (the kernel's rules, see prctl(2)):
- "parent" is the *thread* that forked the child: the signal fires when that thread exits, not only the
  process. Spawn long-lived children from a thread that lives as long as they should (the main thread, or
  a supervisor thread that ends only when the children are stopped anyway).
- the setting survives `execve` but is cleared when the child execs a set-user-ID/set-group-ID binary; it
  is set after Popen's own uid/gid switch (which would otherwise clear it), so `user=`/`group=` keep it.
- only the direct child gets it: grandchildren (a Lambda's own subprocesses) need their own (a worker's
  process group is signalled as a whole on a normal stop).
- Linux only; elsewhere the returned function does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

try:
    # Resolved here, in the parent: the child only calls an already-loaded function between fork and exec.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _prctl.restype = ctypes.c_int
except (OSError, AttributeError):  # not Linux (no prctl in libc)
    _prctl = None


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn` making the child receive `signum` when the spawning thread (or its process) dies."""
    parent_pid = os.getpid()
    prctl = _prctl

    def set_parent_death_signal() -> None:
        if prctl is None:
            return
        prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        # The parent may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signum)

    return set_parent_death_signal
