"""Browser tests keep each phase's report on the test item, so a failure hook sees a failed attempt
even when pytest-rerunfailures then marks it "rerun" (session.testsfailed never counts those)."""
from __future__ import annotations

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)

