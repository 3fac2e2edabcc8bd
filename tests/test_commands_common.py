"""exporter/commands/common.py: one-line errors, their exit codes, and the wrapper every command runs in."""

from __future__ import annotations

import argparse

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from exporter.commands.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    AwsFailure,
    CommandError,
    UsageError,
    aws_failure,
    guarded,
    one_line,
    region_of,
)


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "line one\nline two"}}, "DescribeTargetGroups")


@given(st.text())
def test_one_line_never_holds_a_line_break(text: str) -> None:
    line = one_line(ValueError(text))
    assert not any(ch in line for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
    assert line.split() == text.split()


def test_one_line_of_a_lookup_error_is_its_message_without_quotes() -> None:
    assert one_line(KeyError("no target group named 'web'")) == "no target group named 'web'"


@pytest.mark.parametrize(
    ("error", "code", "start"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), EXIT_USAGE, "cannot reach AWS: "),
        (_client_error("ExpiredToken"), EXIT_USAGE, "cannot reach AWS: "),
        (_client_error("AccessDenied"), EXIT_USAGE, "cannot reach AWS: "),
        (_client_error("Throttling"), EXIT_FAILURE, "AWS error: "),
    ],
)
def test_aws_failure_says_unreachable_for_credentials_and_connections(
    error: Exception, code: int, start: str
) -> None:
    failure = aws_failure(error)
    assert isinstance(failure, AwsFailure)
    assert failure.code == code
    assert str(failure).startswith(start) and "\n" not in str(failure)


def test_guarded_turns_known_failures_into_one_stderr_line_and_their_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fails(error: BaseException) -> int:
        raise error

    assert guarded("cmd", lambda: fails(UsageError("--at: not\na time"))) == EXIT_USAGE
    assert capsys.readouterr().err == "cmd: --at: not a time\n"
    assert guarded("cmd", lambda: fails(CommandError("cannot write x", 7))) == 7
    assert capsys.readouterr().err == "cmd: cannot write x\n"
    assert guarded("cmd", lambda: fails(LookupError("no such target")), (LookupError,)) == EXIT_USAGE
    assert capsys.readouterr().err == "cmd: no such target\n"
    assert guarded("cmd", lambda: 0) == 0
    with pytest.raises(RuntimeError):  # not a known failure: a bug keeps its traceback
        guarded("cmd", lambda: fails(RuntimeError("bug")), (LookupError,))


def test_region_of_prefers_the_flag_then_aws_region_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert region_of(argparse.Namespace(region=None)) is None
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert region_of(argparse.Namespace(region=None)) == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    assert region_of(argparse.Namespace(region=None)) == "us-east-2"
    assert region_of(argparse.Namespace(region="ap-south-1")) == "ap-south-1"
