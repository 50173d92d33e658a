"""A real headless Chromium for tests that check pages as users see them.

Debian's `chromium` and `chromium-driver` packages provide the browser and its driver (`.ci/run`
installs them where it can); without them, or without selenium, the tests that need a browser skip
and say what to install.
"""

from __future__ import annotations

import shutil

import pytest


def _find(*names: str) -> str | None:
    return next((p for n in names if (p := shutil.which(n))), None)


@pytest.fixture
def browser():
    """A headless Chromium WebDriver (1280x900), quit after the test."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    binary = _find("chromium", "chromium-browser", "google-chrome")
    driver_path = _find("chromedriver", "chromium-driver")
    if not binary or not driver_path:
        pytest.skip("headless Chromium not found: install Debian's `chromium` and `chromium-driver` packages")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900"):
        opts.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
