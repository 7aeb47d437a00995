"""Exit codes and the exception tree. Core code raises; only cli.main() exits."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Stable, documented exit codes (README "Exit codes")."""

    OK = 0
    INTERNAL = 1  # a bug: traceback only with --debug
    USAGE = 2  # bad flag or value; nothing was executed
    PREREQ = 3  # missing local tool or cluster prerequisite (CRDs, StorageClass)
    CLUSTER = 4  # cluster unreachable, authentication failure, RBAC forbidden
    DEPLOY_FAILED = 5  # helmfile/helm error, pending release, HTTPRoute not accepted
    NOT_READY = 6  # readiness failed: timeout, terminal pod state, unschedulable
    TEST_FAILED = 7  # smoke test failed or the endpoint could not be reached
    THRESHOLD = 8  # perf test finished but breached --max-error-rate or an SLO
    CLEANUP_INCOMPLETE = 9  # some cleanup step failed; resources remain
    REFUSED = 10  # refused by a safety guard
    INTERRUPTED = 130  # SIGINT
    TERMINATED = 143  # SIGTERM

    @classmethod
    def for_signal(cls, signum: int | None) -> ExitCode:
        """The exit of a run stopped by `signum`: 143 for SIGTERM (CI cancellation), else 130 (Ctrl-C)."""
        return cls.TERMINATED if signum == 15 else cls.INTERRUPTED


class LlmdError(Exception):
    """An error the user can act on: a message, an optional hint, a fixed exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None, *, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        self.log_path: str | None = None  # the run's command transcript, printed by the boundary as `log: <path>`


class ConfigError(LlmdError):
    exit_code = ExitCode.USAGE


class PrereqError(LlmdError):
    exit_code = ExitCode.PREREQ


class ClusterError(LlmdError):
    exit_code = ExitCode.CLUSTER


class DeployError(LlmdError):
    exit_code = ExitCode.DEPLOY_FAILED


class NotReadyError(LlmdError):
    exit_code = ExitCode.NOT_READY


class TestFailed(LlmdError):
    __test__ = False  # not a pytest test class
    exit_code = ExitCode.TEST_FAILED


class ThresholdBreached(LlmdError):
    exit_code = ExitCode.THRESHOLD


class CleanupIncomplete(LlmdError):
    exit_code = ExitCode.CLEANUP_INCOMPLETE


class Refused(LlmdError):
    exit_code = ExitCode.REFUSED


class Interrupted(LlmdError):
    """Raised when SIGINT/SIGTERM stops a run; `state` says what may remain."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str = "interrupted", hint: str | None = None, *, signum: int | None = 2) -> None:
        super().__init__(message, hint)
        self.exit_code = ExitCode.for_signal(signum)


class CommandFailed(LlmdError):
    """A child process exited non-zero. The subclass of the caller decides the exit code."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None, *, result=None, exit_code: ExitCode | None = None):
        super().__init__(message, hint)
        self.result = result
        if exit_code is not None:
            self.exit_code = exit_code


class CommandTimeout(CommandFailed):
    pass
