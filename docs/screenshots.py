"""Screenshots for the README and the docs, taken in a real headless Chromium (selenium + Debian's
chromium and chromium-driver), so the pictures show what a user sees:

    python docs/screenshots.py report demo/reports/index.html docs/img/report.png
    python docs/screenshots.py play http://127.0.0.1:8766/ docs/img/play.png     # make demo-play running
    python docs/screenshots.py page site/reference/settings/index.html /tmp/settings.png
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path


def driver(width: int = 1280, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)


def _url(where: str) -> str:
    return where if where.startswith("http") else Path(where).resolve().as_uri()


def shoot(kind: str, where: str, out: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    d = driver()
    try:
        d.get(_url(where))
        if kind == "play":  # wait for the model list, draw a grid of 32, wait for its faces
            WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#gen-model option"))
            count = d.find_element(By.ID, "gen-count")
            count.clear()
            count.send_keys("32")
            d.find_element(By.ID, "gen-go").click()
            WebDriverWait(d, 120).until(ec.visibility_of_element_located((By.ID, "gen-download")))
            time.sleep(1)
        else:
            time.sleep(1)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(out)
    finally:
        d.quit()


if __name__ == "__main__":
    shoot(*sys.argv[1:4])
