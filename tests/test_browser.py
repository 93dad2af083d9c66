"""`/docs` and `/redoc` in a real headless Chromium that can reach no host but this machine.

Chromium and chromedriver come from Debian's packages (`.ci/install-browser`); Selenium drives
that chromedriver and never downloads a browser or a driver. The service is a real uvicorn
process on a fresh SQLite file. Every name that is not 127.0.0.1 fails to resolve in the
browser, and each page's own network log must show no request for another origin that the
browser did not refuse by itself (the pages' Content-Security-Policy).

The README's screenshot of /docs is this test's: every run takes it and checks it, into the
test's temporary folder, so a test run leaves the git tree clean. `make screenshot`
(`UPDATE_SCREENSHOT=1`) writes it to docs/screenshot-docs.png instead, and then fails rather
than skips when there is no browser.
"""

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from config import PROJECT_DIR
from tests.databases import IN_CI
from tests.server import migrate, running_service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
README_SCREENSHOT = PROJECT_DIR / "docs" / "screenshot-docs.png"
UPDATE_SCREENSHOT = bool(os.environ.get("UPDATE_SCREENSHOT"))
WAIT_SECONDS = 30
API_KEY = "browser-test-key"
PRODUCTS = [
    {"sku": "TEE-RED-M", "name": "Red T-shirt", "price": 19.99, "quantity": 10},
    {"sku": "MUG-BLUE", "name": "Blue mug", "price": 8.5, "quantity": 3},
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on a fresh SQLite file, holding PRODUCTS."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'catalog.db'}"
    migrate(database_url)
    with running_service(database_url, api_keys=API_KEY) as url:
        for product in PRODUCTS:
            response = httpx.post(
                f"{url}/products", json=product, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            assert response.status_code == 201, response.text
        yield url


@pytest.fixture(scope="module")
def openapi(base_url: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{base_url}/openapi.json").json()
    return document


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        message = (
            f"{' and '.join(missing)} missing: install Chromium and its driver with `{INSTALL}`"
            " (after `apt-get update`), or run .ci/install-browser"
        )
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the browser test is required, never skipped)")
        if UPDATE_SCREENSHOT:
            pytest.fail(f"{message} (UPDATE_SCREENSHOT=1: the screenshot was asked for)")
        pytest.skip(message)

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # No name but 127.0.0.1 resolves: the pages get no chance to use the internet.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,1500",
    ]:
        options.add_argument(argument)
    # The performance log carries the DevTools network events: every request a page makes.
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # A Service with a path already keeps Selenium Manager out; SE_OFFLINE forbids it to
    # download anything should it ever run.
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def test_docs_html_names_no_other_host(base_url: str) -> None:
    for page in ("/docs", "/redoc"):
        response = httpx.get(f"{base_url}{page}")

        assert response.status_code == 200
        links = re.findall(r'(?:src|href|spec-url)="([^"]*)"', response.text)
        assert links, response.text
        assert all(link.startswith("/") and not link.startswith("//") for link in links), links
        assert (
            "url: '/openapi.json'" in response.text or 'spec-url="/openapi.json"' in response.text
        )
        assert "fonts.googleapis.com" not in response.text
        assert "default-src 'self'" in response.headers["content-security-policy"]


def test_swagger_ui_lists_operations_offline(
    browser: WebDriver, base_url: str, openapi: dict[str, Any], tmp_path: Path
) -> None:
    _open(browser, f"{base_url}/docs")

    list_products = _wait_for_operation(browser, "get", "/products")

    assert list_products.is_displayed()
    assert "/products" in list_products.text
    operation_ids = browser.execute_script(
        "return [...document.querySelectorAll('.opblock')].map(block => block.id)"
    )
    assert len(operation_ids) == sum(len(methods) for methods in openapi["paths"].values())
    screenshot = README_SCREENSHOT if UPDATE_SCREENSHOT else tmp_path / "docs.png"
    screenshot.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    assert _requests_to_other_hosts(browser, base_url) == []


def test_swagger_ui_try_it_out_gets_products_from_the_service(
    browser: WebDriver, base_url: str
) -> None:
    _open(browser, f"{base_url}/docs")
    list_products = _wait_for_operation(browser, "get", "/products")

    _click(browser, list_products.find_element(By.CSS_SELECTOR, ".opblock-summary-control"))
    _click(browser, _wait_for(list_products, ".try-out__btn"))
    _click(browser, _wait_for(list_products, "button.execute"))
    status = _wait_for(list_products, ".live-responses-table tr.response .response-col_status")

    assert status.text.strip() == "200"
    request_url = list_products.find_element(By.CSS_SELECTOR, ".request-url pre").text
    assert request_url.startswith(f"{base_url}/products")
    body = list_products.find_element(By.CSS_SELECTOR, ".live-responses-table .microlight").text
    assert [product["name"] for product in json.loads(body)] == ["Red T-shirt", "Blue mug"]
    assert _requests_to_other_hosts(browser, base_url) == []


def test_redoc_renders_the_product_schema_offline(
    browser: WebDriver, base_url: str, openapi: dict[str, Any]
) -> None:
    operation = openapi["paths"]["/products"]["get"]
    listing = operation["responses"]["200"]["content"]["application/json"]["schema"]
    product_schema = openapi["components"]["schemas"][listing["items"]["$ref"].split("/")[-1]]
    _open(browser, f"{base_url}/redoc")
    section = _wait_for(browser, f"[id$='/operation/{operation['operationId']}']")

    ok = next(
        button
        for button in section.find_elements(By.CSS_SELECTOR, "button")
        if button.text.startswith("200")
    )
    _click(browser, ok)
    # The response's schema opens right after its button (the query parameters above it are
    # fields too, so they must not count).
    fields = WebDriverWait(ok, WAIT_SECONDS).until(
        lambda button: button.find_elements(
            By.XPATH, "following-sibling::*[1]//*[contains(@class, 'property-name')]"
        )
    )

    shown = {field.text for field in fields}
    assert set(product_schema["properties"]) <= shown
    assert _requests_to_other_hosts(browser, base_url) == []


def _open(browser: WebDriver, url: str) -> None:
    _network_events(browser)  # drained: what follows is this page's alone
    browser.get(url)


def _wait_for(scope: WebDriver | WebElement, selector: str) -> WebElement:
    def visible(scope: WebDriver | WebElement) -> WebElement | Literal[False]:
        for element in scope.find_elements(By.CSS_SELECTOR, selector):
            if element.is_displayed():
                return element
        return False

    found: WebElement = WebDriverWait(scope, WAIT_SECONDS).until(
        visible, f"nothing visible matches {selector!r}"
    )
    return found


def _wait_for_operation(browser: WebDriver, method: str, path: str) -> WebElement:
    return _wait_for(browser, f".opblock-{method}:has(.opblock-summary-path[data-path='{path}'])")


def _click(browser: WebDriver, element: WebElement) -> None:
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _requests_to_other_hosts(browser: WebDriver, base_url: str) -> list[str]:
    """URLs the open page asked for beyond the service, the ones its Content-Security-Policy
    refused included: each of those is an error in the browser's console (ReDoc's bundle asked
    for its logo on cdn.redoc.ly until api/docs.py served it the service's own)."""
    return sorted(
        event["params"]["request"]["url"]
        for event in _network_events(browser)
        if event["method"] == "Network.requestWillBeSent"
        and not _on_this_machine(event["params"]["request"]["url"], base_url)
    )


def _network_events(browser: WebDriver) -> list[dict[str, Any]]:
    """The DevTools events logged since the last call (reading the log empties it)."""
    entries: list[dict[str, Any]] = browser.get_log("performance")  # type: ignore[no-untyped-call]
    return [json.loads(entry["message"])["message"] for entry in entries]


def _on_this_machine(url: str, base_url: str) -> bool:
    # data: URLs are inline, blob: URLs are the page's own, chrome: URLs the browser's pages.
    return url == base_url or url.startswith(
        (f"{base_url}/", f"blob:{base_url}/", "data:", "chrome:")
    )
