"""How a failed dev server start is told apart: a lost port is retried, anything else is not
(temporal_automations/devserver.py, `start_failure`)."""

from __future__ import annotations

from temporal_automations.devserver import DevServerError, _PortTaken, start_failure

BIND_FAILED = "panic: listen tcp 127.0.0.1:41235: bind: address already in use"
STACK = [
    f"\t/home/runner/go/pkg/mod/go.uber.org/fx@v1.24.0/module.go:{n} +0x13b" for n in range(60)
]


def test_a_port_lost_at_the_top_of_a_long_panic_is_a_port_race() -> None:
    log = "\n".join(["starting", BIND_FAILED, "", "goroutine 1 [running]:", *STACK])
    error = start_failure("exited with code 2", log, exited=True)
    assert isinstance(error, _PortTaken)
    assert BIND_FAILED in str(error)  # the cause is shown, not only the stack's tail


def test_another_panic_is_not_retried_and_its_first_line_is_shown() -> None:
    cause = "panic: unable to open database file"
    log = "\n".join([cause, "goroutine 1 [running]:", *STACK])
    error = start_failure("exited with code 2", log, exited=True)
    assert type(error) is DevServerError
    assert str(error).splitlines()[1] == cause
    assert STACK[-1] in str(error)


def test_a_server_that_is_still_running_has_not_lost_a_port() -> None:
    error = start_failure("timed out (30 s)", BIND_FAILED, exited=False)
    assert type(error) is DevServerError
