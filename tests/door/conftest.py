"""Door tests share the web tests' small world (two sites, a user of each role, a camera each)."""

from tests.web.conftest import world  # noqa: F401 - the fixture, re-exported for this folder
