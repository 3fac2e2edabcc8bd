"""What every command shares: exit codes, one-line errors on stderr, and the wrapper that turns a
command's known failures into `prog: message` and its exit code (explain, plan, replay, ...).

Input several commands read the same way lives here too: an inventory file (`snapshot`'s output)
and a duration (`7d`, `12h`)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from exporter.engine.inventory import Inventory

EXIT_OK = 0
EXIT_FAILURE = 1
#: Bad input: an option, a file, a target not found, AWS unreachable or refusing the credentials.
EXIT_USAGE = 2
#: A reader that stopped early (`replay ... | head`): 128 + SIGPIPE, what a shell shows for a
#: writer the pipe cut short, and no traceback.
EXIT_PIPE_CLOSED = 141

#: Error codes that mean "these credentials do not work here", not "this call failed".
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "AccessDenied",
        "AccessDeniedException",
    }
)

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
#: The longest duration a command reads: 100 years (CloudTrail began in 2013; much further back, a
#: date falls off the calendar, year 1, and the command would die with OverflowError).
MAX_DURATION = timedelta(days=36500)


class CommandError(Exception):
    """A failure a command reports as one line on stderr, exiting with `code`."""

    code = EXIT_FAILURE

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UsageError(CommandError):
    """Input that cannot be used (exit 2); the message names the option or file."""

    code = EXIT_USAGE


class AwsFailure(CommandError):
    """AWS could not be read: exit 2 when unreachable or the credentials fail, 1 otherwise."""


def one_line(error: BaseException | str) -> str:
    """The error's message with every run of whitespace (newlines too) as one space.

    A LookupError's message is its first argument (str() of a KeyError adds quotes)."""
    if isinstance(error, LookupError) and error.args:
        error = str(error.args[0])
    return " ".join(str(error).split())


def aws_failure(exc: Exception) -> AwsFailure:
    """A botocore error as the AwsFailure a command reports (exit 2 or 1, see AwsFailure)."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code not in CREDENTIAL_ERROR_CODES:
            return AwsFailure(f"AWS error: {one_line(exc)}", EXIT_FAILURE)
    return AwsFailure(f"cannot reach AWS: {one_line(exc)}", EXIT_USAGE)


def region_of(args: argparse.Namespace) -> str | None:
    """--region, else AWS_REGION, else AWS_DEFAULT_REGION (None when none is set)."""
    given: str | None = getattr(args, "region", None)
    return given or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


def report(prog: str, error: BaseException | str, stream: TextIO | None = None) -> None:
    """`prog: message` on one line of stderr."""
    print(f"{prog}: {one_line(error)}", file=stream or sys.stderr)


def guarded(
    prog: str,
    body: Callable[[], int],
    usage_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run a command's body: a CommandError, or one of `usage_errors` (exit 2), becomes one line on
    stderr and the exit code; anything else is a bug and keeps its traceback."""
    try:
        return body()
    except CommandError as exc:
        report(prog, exc)
        return exc.code
    except usage_errors as exc:
        report(prog, exc)
        return EXIT_USAGE


def parse_duration(text: str) -> timedelta:
    """'7d', '12h', '1d12h', '30m', '90s' -> timedelta; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (examples: 7d, 12h, 1d12h, 30m)")
    if any(len(g or "") > 12 for g in match.groups()):
        raise ValueError(f"too long: {text[:40]!r} (at most {MAX_DURATION.days}d)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    try:
        duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        duration = MAX_DURATION + MAX_DURATION
    if duration > MAX_DURATION:
        raise ValueError(f"too long: {text[:40]!r} (at most {MAX_DURATION.days}d)")
    return duration


def load_inventory(path: Path) -> Inventory:
    """Read a snapshot file; raises InventoryError with a one-line reason."""
    import json

    from exporter.engine.inventory import Inventory, InventoryError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InventoryError(f"inventory {path} is not JSON: {exc}") from exc
    except RecursionError as exc:  # arrays in arrays, thousands deep: no snapshot file is
        raise InventoryError(f"inventory {path} is nested too deeply to be a snapshot file") from exc
    return Inventory.from_dict(data)
