"""A user in a browser: headless Chromium opens the served stack's Prefect UI, goes to the `write-dataset`
deployment, starts a custom run from its form (a NetCDF file into an S3 target), opens the run's page, waits until
it says Completed and finds there the run's task runs and artifacts. The REST API and the repository then agree:
the run completed and committed the file's data as the repository's one new snapshot.

The source is a NetCDF file because that is the `source` union's first form: Prefect 3.8.8's form, switched to
another of the union's tabs (the synthetic dataset), keeps the first form's defaults in the value, which the
schema then refuses."""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import xarray as xr
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import BUCKET, open_repo
from tests.deployments.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
# without the background-networking flags chromium keeps calling Google's services, which this network refuses
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.s3,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"the browser test did not run: {CHROMIUM} is missing; it needs Debian's `chromium` package "
        "(`make test` installs it when run as root)",
    ),
]

SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui-run-page.png"
SMALL = {"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}
ACTION_MS, RUN_MS = 60_000, 300_000  # 2 cores run the whole stack and the browser

TASK_RUNS = ["initialize", "merge-and-commit"]  # the stages, besides a `write ...` task run per block


def _keep(page: Page) -> None:
    """The page as the test last saw it, screenshot and HTML, for a person to look at."""
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    SCREENSHOT.with_suffix(".html").write_text(page.content())


@contextmanager
def _browser(origin: str) -> Iterator[Page]:
    """A page of a fresh headless Chromium; kept (screenshot and HTML) if the block fails."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            # the UI also calls analytics hosts: refused at once rather than left to time out on this closed network
            context.route(lambda url: not url.startswith(origin), lambda route: route.abort())
            page = context.new_page()
            page.set_default_timeout(ACTION_MS)
            expect.set_options(timeout=ACTION_MS)
            try:
                yield page
            except BaseException:
                with suppress(Exception):
                    _keep(page)
                raise
        finally:
            browser.close()


def _submit(page: Page) -> None:
    """Submit the run form until the notice that the run was created shows. The API answers 503 while its SQLite
    is busy (2 cores run the whole stack): the user sees an error notice, waits for it to go, and submits again."""
    created = page.get_by_role("link", name="View run", exact=True)
    busy = page.get_by_text("error while creating flow run")
    for _ in range(10):
        page.get_by_role("button", name="Submit", exact=True).click()
        expect(created.or_(busy).first).to_be_visible()
        if created.is_visible():
            return
        expect(busy).to_have_count(0)
    expect(created).to_be_visible()


def test_a_run_started_from_the_deployments_form_shows_completed_with_its_task_runs_and_artifacts(
    stack: Stack, s3_env: None, tmp_path: Path
) -> None:
    from tasks.storage.synthetic import SyntheticDataset

    netcdf = tmp_path / "small.nc"
    SyntheticDataset(**SMALL).open().to_netcdf(netcdf, engine="h5netcdf")
    target, name = f"s3://{BUCKET}/ui-{uuid.uuid4().hex}", f"ui-{uuid.uuid4().hex[:8]}"
    origin = stack.api.removesuffix("/api")

    with _browser(origin) as page:
        page.goto(origin)  # the server sends a new browser on to its default UI
        page.get_by_role("link", name="Deployments", exact=True).click()
        # its row links the deployment and its flow, both named write-dataset, in an order that varies as it loads
        deployment = page.get_by_role("link", name="write-dataset", exact=True)
        deployment.and_(page.locator("[href*='/deployments/deployment/']")).first.click()
        expect(page).to_have_url(re.compile(r"/deployments/deployment/"))
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Custom run", exact=True).click()
        run_name = page.get_by_label("Run Name", exact=True)
        expect(run_name).not_to_have_value("")  # the form fills itself in (a name) once loaded
        run_name.fill(name)
        page.get_by_label("repo", exact=True).fill(target)
        # the Paths label names its field's tabs (str | list), not the text box under them
        page.get_by_text("Paths", exact=True).locator("xpath=following::textarea[1]").fill(str(netcdf))
        _submit(page)
        page.get_by_role("link", name="View run", exact=True).click()  # in the notice that the run was created

        expect(page).to_have_title(re.compile(re.escape(name)))
        run_id = re.search(r"/flow-run/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]
        # the run's state badge: on the first tab (logs) no other text of the page is exactly a state's name
        final_state = page.get_by_role("main").get_by_text(re.compile(r"^(Completed|Failed|Crashed|Cancelled)$"))
        expect(final_state.first).to_be_visible(timeout=RUN_MS)
        expect(final_state.first).to_have_text("Completed")

        page.get_by_role("tab", name="Artifacts").click()
        expect(page.get_by_text(re.compile(r"^progress$", re.IGNORECASE))).to_be_visible()
        expect(page.get_by_text(re.compile(r"^blocks written of \d+$"))).to_be_visible()
        page.get_by_role("tab", name="Task Runs").click()
        expect(page.get_by_role("link", name=re.compile(r"^write ")).first).to_be_visible()
        for task_run in TASK_RUNS:
            expect(page.get_by_role("link", name=task_run, exact=True)).to_be_visible()
        _keep(page)

        # the summary's text is on its artifact's page: the card opens it (Prefect 3.9's UI), or the key's page,
        # which lists its versions, each named by its id (3.8's)
        page.get_by_role("tab", name="Artifacts").click()
        page.get_by_text(re.compile(r"^markdown$", re.IGNORECASE)).click()
        expect(page).to_have_url(re.compile(r"/artifacts/(key|artifact)/"))
        if "/artifacts/key/" in page.url:
            page.get_by_role("link", name=re.compile(r"^[0-9a-f]{8}$")).click()
        expect(page.get_by_text("committed snapshot").first).to_be_visible()
        expect(page.get_by_text(open_repo(target).lookup_branch("main")).first).to_be_visible()  # the new snapshot

    run = stack.wait_until_done(run_id, timeout=60)
    assert run["state_type"] == "COMPLETED", stack.log_text(run_id)
    assert (run["name"], run["deployment_id"]) == (name, stack.deployment_id("write-dataset", "write-dataset"))
    assert (run["parameters"]["repo"], run["parameters"]["source"]["paths"]) == (target, str(netcdf))
    repo = open_repo(target)
    assert len(list(repo.ancestry(branch="main"))) == 2  # the repository's first snapshot and the run's one
    landed = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).compute()
    with xr.open_dataset(netcdf, engine="h5netcdf") as source:
        xr.testing.assert_identical(landed, source.compute())
