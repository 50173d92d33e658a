"""The play page in a real headless Chromium over a real uvicorn server and tiny trained models:
a grid, an attribute change redrawing it, the same seed twice, models side by side, a walk strip,
and a sketch drawn with pointer events reaching sketch2image."""

from __future__ import annotations

import pytest

from fakes.play_world import play_server

pytestmark = pytest.mark.slow


@pytest.fixture
def page(play_world, browser):
    from selenium.webdriver.support.ui import WebDriverWait

    _, params = play_world
    with play_server(params) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        yield browser, wait
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors


def js(browser, code, *args):
    return browser.execute_script(code, *args)


def seq(browser, box: str) -> int:
    return int(js(browser, f"return document.getElementById('{box}').dataset.seq"))


def done_after(wait, browser, box: str, before: int):
    wait.until(lambda d: seq(d, box) > before)
    error = js(browser, "const e = document.getElementById('error'); return e.hidden ? '' : e.textContent")
    assert not error, error


def faces(browser, box: str) -> list[str]:
    return js(browser, f"return [...document.querySelectorAll('#{box} img')].map(i => i.src)")


def test_generate_change_an_attribute_and_redraw_the_same_seed(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser, wait = page
    wait.until(lambda d: seq(d, "gen-out") >= 1)  # the first model's grid on load
    model = Select(browser.find_element(By.ID, "gen-model"))
    assert [o.get_attribute("value") for o in model.options] == ["acgan", "dcgan", "gan_mlp"]  # sketch2image: own panel
    before = seq(browser, "gen-out")
    model.select_by_value("dcgan")
    done_after(wait, browser, "gen-out", before)
    assert len(faces(browser, "gen-out")) == 16
    first = faces(browser, "gen-out")

    count = browser.find_element(By.ID, "gen-count")
    count.clear()
    count.send_keys("6")
    before = seq(browser, "gen-out")
    browser.find_element(By.ID, "gen-go").click()
    done_after(wait, browser, "gen-out", before)
    six = faces(browser, "gen-out")
    assert len(six) == 6
    before = seq(browser, "gen-out")
    browser.find_element(By.ID, "gen-go").click()  # the same seed again: the same faces
    done_after(wait, browser, "gen-out", before)
    assert faces(browser, "gen-out") == six and first[:6] != [] and "seed0" in js(
        browser, "return document.getElementById('gen-download').download")

    model.select_by_value("acgan")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#gen-attrs select[data-attr="hair_color"]'))
    done_after(wait, browser, "gen-out", before + 1)
    grid_random = faces(browser, "gen-out")
    before = seq(browser, "gen-out")
    Select(browser.find_element(By.CSS_SELECTOR, '#gen-attrs select[data-attr="hair_color"]')).select_by_value("blue")
    done_after(wait, browser, "gen-out", before)  # changing a value draws again, no button needed
    last = js(browser, "return window.playRequests.at(-1)")
    assert last["path"] == "/api/generate" and last["body"]["attributes"] == {"hair_color": "blue", "eye_color": "random"}
    assert "hair_color=blue" in browser.find_element(By.ID, "gen-command").text
    assert faces(browser, "gen-out") != grid_random
    titles = js(browser, "return [...document.querySelectorAll('#gen-out img')].map(i => i.title)")
    assert all("hair_color=blue" in t for t in titles)
    assert "hair_color=blue" in js(browser, "return document.getElementById('gen-download').download")

    # the MLflow run beside it
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#run a"))
    assert "/runs/" in browser.find_element(By.CSS_SELECTOR, "#run a").get_attribute("href")


def test_two_models_side_by_side(page):
    from selenium.webdriver.common.by import By

    browser, wait = page
    browser.find_element(By.CSS_SELECTOR, '#tabs [data-tab="compare"]').click()
    for box in browser.find_elements(By.CSS_SELECTOR, "#cmp-models input"):
        if box.is_selected() != (box.get_attribute("value") in ("dcgan", "gan_mlp")):
            box.click()
    before = seq(browser, "cmp-out")
    browser.find_element(By.ID, "cmp-go").click()
    done_after(wait, browser, "cmp-out", before)
    columns = browser.find_elements(By.CSS_SELECTOR, "#cmp-out .column")
    assert [c.get_attribute("data-model") for c in columns] == ["dcgan", "gan_mlp"]
    for c in columns:
        assert len(c.find_elements(By.TAG_NAME, "img")) == 8


def test_walk_from_a_clicked_face_gives_a_strip_of_the_requested_length(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser, wait = page
    wait.until(lambda d: seq(d, "gen-out") >= 1)
    browser.find_elements(By.CSS_SELECTOR, "#gen-out img")[3].click()
    assert browser.find_element(By.ID, "gen-actions").is_displayed()
    browser.find_element(By.ID, "gen-walk-to").click()  # face 3 becomes the end of the walk
    assert browser.find_element(By.ID, "panel-walk").is_displayed()
    assert browser.find_element(By.ID, "walk-to-index").get_attribute("value") == "3"
    steps = browser.find_element(By.ID, "walk-steps")
    steps.clear()
    steps.send_keys("5")
    Select(browser.find_element(By.ID, "walk-mode")).select_by_value("lerp")
    before = seq(browser, "walk-out")
    browser.find_element(By.ID, "walk-go").click()
    done_after(wait, browser, "walk-out", before)
    assert len(faces(browser, "walk-out")) == 5
    body = js(browser, "return window.playRequests.at(-1).body")
    assert body["mode"] == "lerp" and body["end"] == {"seed": 0, "index": 3, "count": 16} and body["steps"] == 5
    Select(browser.find_element(By.ID, "walk-mode")).select_by_value("near")
    assert not browser.find_element(By.ID, "walk-to").is_displayed()
    before = seq(browser, "walk-out")
    browser.find_element(By.ID, "walk-go").click()
    done_after(wait, browser, "walk-out", before)
    assert len(faces(browser, "walk-out")) == 5
    assert browser.find_element(By.ID, "walk-download").get_attribute("download").startswith("acgan_step3_near")


def test_a_sketch_drawn_with_pointer_events_reaches_sketch2image(page):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.interaction import POINTER_TOUCH
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    browser, wait = page
    browser.find_element(By.CSS_SELECTOR, '#tabs [data-tab="sketch"]').click()
    canvas = browser.find_element(By.ID, "sketch-canvas")
    blank = js(browser, "return document.getElementById('sketch-canvas').toDataURL()")
    # a finger (touch pointer) draws a stroke across the canvas
    finger = PointerInput(POINTER_TOUCH, "finger")
    actions = ActionBuilder(browser, mouse=finger)
    actions.pointer_action.move_to(canvas, -100, -60).pointer_down()
    for x in range(-100, 101, 20):
        actions.pointer_action.move_to(canvas, x, -60 + abs(x) // 2)
    actions.pointer_action.pointer_up()
    actions.perform()
    assert js(browser, "return document.getElementById('sketch-canvas').toDataURL()") != blank
    before = seq(browser, "sketch-ink")
    browser.find_element(By.ID, "sketch-go").click()
    done_after(wait, browser, "sketch-ink", before)
    last = js(browser, "const r = window.playRequests.at(-1); return [r.path, r.body.model, r.body.image.slice(0, 22)]")
    assert last == ["/api/sketch", "sketch2image", "data:image/png;base64,"]
    assert float(browser.find_element(By.ID, "sketch-ink").get_attribute("data-ink")) > 0.005  # the stroke arrived
    assert js(browser, "return document.getElementById('sketch-face').naturalWidth") == 32
    assert browser.find_element(By.ID, "sketch-download").get_attribute("download") == "sketch2image_step3_from_sketch.png"
