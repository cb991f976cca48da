"""The verdict in a real browser: `hpo report`'s page from disk, and optuna-dashboard showing the
note and the named metric. Chromium is launched as in tests/test_dashboard_browser.py (Debian's
chromium through Playwright; nothing is downloaded). Screenshots: tests/_out/report*.png."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from _compose_helpers import free_port, wait_http
from optuna.storages.journal import JournalFileBackend, JournalStorage
from test_dashboard_browser import CHROMIUM_ARGS, OUT, chromium  # noqa: F401 - fixture

from tests._verdict_fixtures import SIGMA, build_group
from tests.conftest import hpo_cmd, hpo_env, run_hpo

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

METRIC = f"D_s KL(Q||P) [nats], s = {SIGMA:g}"


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """A hand-built study group in the embedded journal, reported with `hpo report`."""
    cwd = tmp_path_factory.mktemp("report-browser")
    journal = cwd / "runs" / "hpo.journal"
    journal.parent.mkdir(parents=True)
    (cwd / "runs" / "artifacts").mkdir()
    build_group(JournalStorage(JournalFileBackend(str(journal))))
    done = run_hpo("report", "verdict", "--out", "report", cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    return cwd


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_report_page_shows_the_verdict_table_and_figures(chromium, reported) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    page_path = reported / "report" / "index.html"
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(page_path.as_uri())
            expect(page.locator("#verdict-sentence")).to_contain_text(
                "classical is better than quantum")
            table = page.locator("table.verdict-table")
            expect(table).to_be_visible()
            expect(table.locator("tr")).to_have_count(1 + 4)  # header + 2 configs per kind
            expect(table).to_contain_text("classical (best)")
            expect(page.locator("table.comparison-table tr")).to_have_count(1 + 4)
            for figure in ("validation", "profile", "anytime", "intermediate"):
                image = page.locator(f"#fig-{figure} img")
                expect(image).to_be_visible()
                assert image.evaluate("img => img.complete && img.naturalWidth") > 300, figure
            page.screenshot(path=str(OUT / "report.png"), full_page=True)
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dashboard_shows_the_note_and_the_metric_name(chromium, reported) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=60_000)
    port = free_port()
    server = subprocess.Popen(hpo_cmd("dashboard", "--port", str(port)), cwd=reported,
                              env=hpo_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/studies", timeout=120, proc=server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1400})
                page.set_default_timeout(90_000)  # a loaded 2-core machine serves slowly
                page.goto(f"{base}/dashboard")
                page.get_by_role("link", name=re.compile(r"^\d+\. verdict\.quantum\b")).click()
                # The history plot names the objective on its value axis.
                expect(page.locator(".ytitle", has_text=METRIC).first).to_be_visible()
                page.screenshot(path=str(OUT / "report-dashboard.png"), full_page=True)
                # The study note carries the verdict and shows the report's figures.
                page.get_by_role("link", name="Note").click()
                expect(page.get_by_text("classical is better than quantum").first).to_be_visible()
                figure = page.locator("img[src*='/artifacts/']").first
                expect(figure).to_be_visible()
                page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                       arg=figure.element_handle())
                page.screenshot(path=str(OUT / "report-note.png"), full_page=True)
            finally:
                browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
