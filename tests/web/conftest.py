"""The portal's tests share the small practice of ``tests/web/practice.py``."""

import pytest

from tests.web.practice import build_practice


@pytest.fixture
def practice(ctx, app) -> dict:
    return build_practice(ctx, app)
