"""The page in a real headless Chromium, driven by Selenium, against the real server.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skips
with the reason when one is missing, and fails instead when
``COLLABFILTER_REQUIRE_BROWSER=1`` (CI installs them). Saves ``docs/screenshot.png``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from serve_helpers import ROOT, ServerProcess, train_and_save

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "docs" / "screenshot.png"
pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def browser_or_skip() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if not missing:
        return
    reason = (
        f"browser test needs {', '.join(missing)}: apt-get install -y chromium "
        "chromium-driver; pip install selenium (the dev extra)"
    )
    if os.environ.get("COLLABFILTER_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(ml100k, tmp_path_factory):
    browser_or_skip()
    folder = tmp_path_factory.mktemp("browser")
    model = train_and_save(ml100k, folder / "ml100k.cf", epochs=None, tune_decay=False)
    with ServerProcess(model, folder / "ratings.db", log=folder / "server.log") as process:
        yield process


@pytest.fixture(scope="module")
def driver(server, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     "--window-size=1280,1500", "--hide-scrollbars",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


def test_search_neighbours_rate_recommend_map_and_biases(server, driver):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 20)

    def texts(selector: str) -> list[str]:  # one round trip for a whole column
        script = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)"
        return list(driver.execute_script(script, selector))

    def search_and_rate(query: str, title: str, stars: int) -> None:
        box = driver.find_element(By.ID, "search")
        box.clear()
        box.send_keys(query)
        wait.until(lambda d: title in texts("#results .title"))
        row = next(li for li in driver.find_elements(By.CSS_SELECTOR, "#results li")
                   if li.find_element(By.CSS_SELECTOR, ".title").text == title)  # fmt: skip
        row.find_element(By.CSS_SELECTOR, f".stars button[data-value='{stars}']").click()
        wait.until(lambda d: any(title in t for t in texts("#rated li")))

    driver.get(server.url)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert "943 users" in driver.find_element(By.ID, "model-info").text

    # search, then the neighbours of a result
    search_and_rate("star wars", "Star Wars (1977)", 5)
    driver.find_element(By.CSS_SELECTOR, "#results .title").click()
    wait.until(lambda d: len(texts("#neighbours .title")) == 10)
    assert driver.find_element(By.ID, "neighbours-of").text == "Star Wars (1977)"
    assert "Return of the Jedi (1983)" in texts("#neighbours .title")

    # rate a few more, then recommendations with their reasons
    search_and_rate("godfather", "Godfather, The (1972)", 5)
    search_and_rate("sleepless in seattle", "Sleepless in Seattle (1993)", 1)
    driver.find_element(By.ID, "recommend").click()
    wait.until(lambda d: len(texts("#recommendations .title")) == 10)
    reasons = texts("#recommendations .because")
    assert reasons and all(r.startswith("because you rated ") for r in reasons)
    assert all("Sleepless" not in r for r in reasons)  # a disliked film explains nothing
    rated = {"Star Wars (1977)", "Godfather, The (1972)", "Sleepless in Seattle (1993)"}
    assert not rated & set(texts("#recommendations .title"))

    # the map: hover shows a title, the wheel zooms
    circles = driver.find_elements(By.CSS_SELECTOR, "#map circle")
    assert len(circles) == 500
    target = circles[0]
    ActionChains(driver).move_to_element(target).perform()
    tooltip = driver.find_element(By.ID, "tooltip")
    wait.until(lambda d: tooltip.is_displayed() and "ratings" in tooltip.text)
    driver.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT))  # for the README
    assert SCREENSHOT.stat().st_size > 10_000

    before = circles[1].get_attribute("cx")
    svg = driver.find_element(By.CSS_SELECTOR, "#map svg")
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(svg), 0, -400).perform()
    wait.until(lambda d: circles[1].get_attribute("cx") != before)

    # the bias table sorts by any column
    def column(index: int) -> list[str]:
        return texts(f"#biases tbody tr td:nth-child({index})")

    title_header = driver.find_element(By.CSS_SELECTOR, "#biases th[data-key='title']")
    title_header.click()
    titles = column(1)
    assert len(titles) == 500 and title_header.get_attribute("class") == "sorted-asc"
    assert titles[0].casefold() <= titles[len(titles) // 2].casefold() <= titles[-1].casefold()
    driver.find_element(By.CSS_SELECTOR, "#biases th[data-key='ratings']").click()
    counts = [int(c) for c in column(4)]
    assert counts == sorted(counts, reverse=True)
    driver.find_element(By.CSS_SELECTOR, "#biases th[data-key='bias']").click()
    biases = [float(b) for b in column(2)]
    assert biases == sorted(biases, reverse=True)

    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe  # no script error, no blocked resource
