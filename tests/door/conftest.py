"""Door tests share the web tests' small world (two sites, a user of each role, a camera each)
and the browser tests' Chromium."""

from tests.browser.conftest import browser  # noqa: F401 - fixtures, re-exported for this folder
from tests.web.conftest import world  # noqa: F401
