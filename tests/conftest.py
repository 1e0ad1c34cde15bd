"""Suite-wide hooks.

In CI (``CI=true``), a skipped test means the environment is wrong (a required dependency missing, a fixture that
could not start), so it fails there -- unless its reason is one of :data:`ALLOWED_SKIP_REASONS`: data or tools
that live outside the repository and that CI may legitimately lack (the ``../shared`` folder with CIFAR-10 and
the KubeRay CRDs, ``kubectl``), or a platform fact (root ignores folder permissions).
"""

from __future__ import annotations

import os

import pytest

#: Phrases of skip reasons that stay skips in CI.
ALLOWED_SKIP_REASONS = (
    "shared/",  # ../shared beside the repository: datasets, CRDs
    "dataset",  # a dataset that is not on this machine
    "kubectl is not installed",
    "not a git checkout",
    "root ignores folder permissions",
    "needs root to mount a tmpfs",
    "Linux only",
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not (_in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(phrase in reason for phrase in ALLOWED_SKIP_REASONS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI ({reason}): in CI a skip means a broken environment; fix it or allow-list it"
