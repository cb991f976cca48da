"""optuna-dashboard in a real browser: the study, its trials, their reports and sample images.

The study comes from the compose services run as processes (tests/_compose_helpers.py): init,
2 workers on studies/smoke.yaml against a fresh database on the test PostgreSQL, and the dashboard
service on a free port. Playwright for Python then drives Debian's chromium (installed by .ci/run
with apt; nothing is downloaded): home page -> the study -> the intermediate-values plot has one
line per reporting trial -> the trial list shows every trial -> a finished trial's page loads its
sample PNG (naturalWidth > 0). Screenshots go to tests/_out/ (gitignored):
dashboard.png (trial list and a trial's image) and dashboard-study.png (the study's plots).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml
from _compose_helpers import REPO, ComposeEquivalent, fresh_database, http_get, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.postgres]

STUDY = "studies/smoke.yaml"
N_WORKERS = 2
OUT = Path(__file__).resolve().parent / "_out"
CHROMIUM = os.environ.get("HPO_TEST_CHROMIUM", "/usr/bin/chromium")
# Debian's chromium, headless, with everything that would reach the network switched off.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; checked before the study is run for it."""
    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} missing: install Debian's chromium (apt-get install chromium; .ci/run does)"
    )
    return CHROMIUM


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """A finished smoke study on PostgreSQL and the dashboard serving it: (base URL, study).
    The study is scored as cheaply as a study file allows: the browser is shown its trials,
    reports and images, whatever their values."""
    from conftest import LIGHT_METRIC, study_variant

    with open(REPO / STUDY) as f:
        name = yaml.safe_load(f)["name"]
    tmp = tmp_path_factory.mktemp("browser")
    study = study_variant(tmp, name, metric=LIGHT_METRIC)
    with fresh_database("hpo_browser") as db:
        stack = ComposeEquivalent(
            tmp,
            {"STUDY": str(study), "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "trust",
             "POSTGRES_DB": db},
        )
        try:
            init = stack.run("init", timeout=180)
            assert init.popen.returncode == 0, f"init failed:\n{init.tail()}"
            workers = [stack.start("worker", name=f"worker-{i}")[0] for i in range(N_WORKERS)]
            server, published = stack.start("dashboard")
            deadline = time.monotonic() + 300
            while any(w.popen.poll() is None for w in workers) and time.monotonic() < deadline:
                time.sleep(1)
            for w in workers:
                assert w.popen.returncode == 0, f"{w.name} exited {w.popen.returncode}:\n{w.tail()}"
            base = f"http://127.0.0.1:{published['8080']}"
            wait_http(f"{base}/api/studies", timeout=60, proc=server.popen)
            yield base, name
        finally:
            stack.stop_all()


def _study_detail(base: str, name: str) -> tuple[int, dict]:
    summaries = json.loads(http_get(f"{base}/api/studies")[1])["study_summaries"]
    study_id = next(s["study_id"] for s in summaries if s["study_name"] == name)
    return study_id, json.loads(http_get(f"{base}/api/studies/{study_id}?after=0", timeout=30)[1])


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_dashboard_shows_study_trials_plot_and_sample_image(chromium, dashboard):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    base, name = dashboard
    study_id, detail = _study_detail(base, name)
    trials = detail["trials"]
    reporting = [t for t in trials if t["intermediate_values"]]
    with_image = [t for t in trials if t["state"] == "Complete"
                  and any(a["mimetype"] == "image/png" for a in t["artifacts"])]
    assert reporting and with_image, "the study has no reports or no sample images to show"
    shown = with_image[-1]["number"]
    OUT.mkdir(exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.set_default_timeout(30_000)

            # Home: the study list links to the study by name.
            page.goto(f"{base}/dashboard")
            page.get_by_role("link", name=re.compile(rf"^\d+\. {re.escape(name)}\b")).click()
            expect(page).to_have_url(re.compile(rf"/dashboard/studies/{study_id}$"))

            # Study page: the intermediate-values plot, one line per trial that reported.
            plot = page.locator("#graph-intermediate-values")
            expect(plot).to_be_visible()
            expect(plot.locator(".scatterlayer .trace")).to_have_count(len(reporting))
            legend = " ".join(t or "" for t in plot.locator(".legendtext").all_text_contents())
            assert f"trial #{reporting[0]['number']}" in legend, legend
            page.screenshot(path=str(OUT / "dashboard-study.png"), full_page=True)

            # Trial list: every trial of the study is listed.
            page.get_by_role("link", name="Trials (List)").click()
            expect(page.get_by_text(re.compile(rf"^{len(trials)} Trials$"))).to_be_visible()
            for t in trials:
                expect(page.get_by_text(f"Trial {t['number']}", exact=True)).to_be_visible()

            # A finished trial: its page shows the sample image, and the image really loads.
            page.get_by_text(f"Trial {shown}", exact=True).click()
            expect(page.get_by_role("heading", name=re.compile(rf"^Trial {shown} \("))) \
                .to_be_visible()
            image = page.locator(f"img[src*='/artifacts/{study_id}/']").first
            expect(image).to_be_visible()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                                   arg=image.element_handle())
            assert image.evaluate("img => img.naturalWidth") > 0
            # The viewport, not the full page: long user attributes make the page very wide.
            image.scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "dashboard.png"))
        finally:
            browser.close()
    assert (OUT / "dashboard.png").stat().st_size > 10_000
