"""The labelling page in a real headless Chromium: filter, label with the mouse and the keyboard,
reload, and the labels stage then reads those values as manual."""

from __future__ import annotations

import pandas as pd
import pytest
import requests

from fakes.label_world import face_ids, label_server, toy_params

pytestmark = pytest.mark.slow


def test_label_faces_in_the_browser_then_the_labels_stage_keeps_them(tmp_path, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from pipeline.labels.stage import run_labels
    from pipeline.tag.stage import tag

    params = toy_params(tmp_path, count=12)
    tag(params.tag, params.paths.faces, params.paths.tags)  # tag.enabled is false: an empty table, no predictions
    ids = face_ids(params)
    wait = WebDriverWait(browser, 15)

    def ready():
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))

    def shown() -> list[str]:
        return browser.execute_script("return [...document.querySelectorAll('#grid .card')].map(c => c.dataset.faceId)")

    def card(fid: str):
        return browser.find_element(By.CSS_SELECTOR, f'.card[data-face-id="{fid}"]')

    def row(fid: str, attr: str):
        return card(fid).find_element(By.CSS_SELECTOR, f'.attr[data-attr="{attr}"]')

    def saved(fid: str, n: int = 1):
        wait.until(lambda d: int(card(fid).get_attribute("data-saved") or 0) >= n)

    with label_server(params) as url:
        # one face already has a manual label (another tab, or an earlier session)
        assert requests.put(f"{url}api/faces/{ids[0]}", json={"values": {"hair_style": "long"}}, timeout=10).ok
        browser.get(url)
        ready()
        assert shown() == ids[:8]  # page_size 8
        Select(browser.find_element(By.ID, "filter")).select_by_value("unlabelled")
        wait.until(lambda d: shown()[:1] == [ids[1]])
        assert shown() == ids[1:9]
        assert browser.find_element(By.ID, "counter").text == "1 / 12 labelled"

        # the mouse: a face's own list, then the value bar under the header for the clicked face
        Select(row(ids[1], "hair_color").find_element(By.TAG_NAME, "select")).select_by_value("blonde")
        saved(ids[1])
        card(ids[2]).find_element(By.CSS_SELECTOR, "img.face").click()
        browser.find_element(By.CSS_SELECTOR, '#palette button[data-value="brown"]').click()
        saved(ids[2])
        # the keyboard: click the face to focus it, 3 = the third hair colour (black)
        card(ids[3]).find_element(By.CSS_SELECTOR, "img.face").click()
        ActionChains(browser).send_keys("3").perform()
        saved(ids[3])
        assert "focused" in card(ids[4]).get_attribute("class")  # "advance after a key" moved on
        ActionChains(browser).send_keys("u").perform()  # undo: back to unknown, focus back on it
        wait.until(lambda d: "none" in row(ids[3], "hair_color").get_attribute("class"))
        assert "focused" in card(ids[3]).get_attribute("class")
        ActionChains(browser).send_keys("3").perform()
        saved(ids[3], 2)
        # past the tenth value: shift + 3 = the 13th hair colour (grey), as its key in the bar says
        assert browser.find_element(By.CSS_SELECTOR, '#palette button[data-value="grey"] kbd').text == "⇧3"
        ActionChains(browser).key_down(Keys.SHIFT).send_keys("3").key_up(Keys.SHIFT).perform()
        saved(ids[4])
        # z: the focused face (advanced to the next one) large in a corner, z again hides it
        ActionChains(browser).send_keys("z").perform()
        zoom = browser.find_element(By.ID, "zoom")
        assert zoom.is_displayed() and zoom.find_element(By.TAG_NAME, "img").get_attribute("src").endswith(f"{ids[5]}/image")
        ActionChains(browser).send_keys("z").perform()
        assert not zoom.is_displayed()
        assert browser.find_element(By.ID, "counter").text == "5 / 12 labelled"
        for fid in ids[1:5]:
            assert "manual" in row(fid, "hair_color").get_attribute("class")

        browser.refresh()
        ready()
        assert shown() == ids[5:12]  # still filtered to unlabelled: the four are labelled now
        Select(browser.find_element(By.ID, "filter")).select_by_value("labelled")
        wait.until(lambda d: shown() == ids[:5])
        for fid, colour in [(ids[1], "blonde"), (ids[2], "brown"), (ids[3], "black"), (ids[4], "grey")]:
            r = row(fid, "hair_color")
            assert Select(r.find_element(By.TAG_NAME, "select")).first_selected_option.get_attribute("value") == colour
            assert "manual" in r.get_attribute("class")
        assert "manual" in row(ids[0], "hair_style").get_attribute("class")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors

    run_labels(params)
    table = pd.read_parquet(params.paths.labels).set_index("face_id")
    assert table.loc[ids[1:5], "hair_color"].tolist() == ["blonde", "brown", "black", "grey"]
    assert (table.loc[ids[1:5], "source_hair_color"] == "manual").all()
    assert table.loc[ids[0], "hair_style"] == "long" and table.loc[ids[0], "source_hair_style"] == "manual"
    assert (table.loc[ids[5:], "source_hair_color"] == "none").all()
