"""A user in a browser: headless Chromium opens the served stack's Prefect UI and starts runs from the deployments'
forms, filling fields and never typing JSON: a `write-dataset` run for each kind of source (NetCDF files, a Zarr
store, an Icechunk repository, the synthetic dataset, a Python function), chosen from the source's Kind list, and an
`ingest` run.
The API is behind an auth string, as a team deploys it: the browser logs in on the UI's Login page first. One of
them is followed on its page until it says Completed, with its task runs and artifacts. Then the REST API
and the repositories agree: every run completed and committed its source's data as one new snapshot.

Each form, filled, is kept as a screenshot in test-artifacts/ (ui-form-<name>.png), and the run page as
ui-run-page.png. Every run's kind is chosen after NetCDF paths were filled, as by a user who changes their mind:
what the form holds for other kinds is dropped (tasks/storage/source_form.py says why the source is one form)."""

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import icechunk
import pytest
import xarray as xr
from icechunk.xarray import to_icechunk
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tests.conftest import BUCKET, committed, open_repo
from tests.deployments.stack import Stack
from tests.sources import steps, synthetic

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

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOT = ARTIFACTS / "ui-run-page.png"
SMALL = {"kind": "synthetic", "ntime": 48, "nlat": 19, "nlon": 36, "time_chunk": 24}
ACTION_MS, RUN_MS = 60_000, 300_000  # 2 cores run the whole stack and the browser

TASK_RUNS = ["initialize", "merge-and-commit"]  # the stages, besides a `write ...` task run per block


def _keep(page: Page, path: Path = SCREENSHOT) -> None:
    """The page as the test last saw it, screenshot and HTML, for a person to look at."""
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=path, full_page=True)
    path.with_suffix(".html").write_text(page.content())


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


def _log_in(page: Page, origin: str, auth_string: str) -> None:
    """The server's API is behind an auth string: the UI opens on its Login page, which takes it."""
    page.goto(origin)
    password = page.get_by_placeholder("admin:pass")
    expect(password).to_be_visible()
    _keep(page, ARTIFACTS / "ui-login.png")
    password.fill(auth_string)
    page.get_by_role("button", name="Login").click()
    expect(page.get_by_role("link", name="Deployments", exact=True)).to_be_visible()


@dataclass(frozen=True)
class FormRun:
    """A run started from a deployment's form: the source's kind to choose and the fields to fill (label: text),
    and the Dataset the target must hold afterwards."""

    name: str
    deployment: str
    target: str
    kind: str
    fields: dict[str, str]
    expected: Callable[[], xr.Dataset]
    snapshots: int = 2  # on main afterwards: a new target's first (the repository's) and the run's


def _open_form(page: Page, origin: str, deployment: str, forms: dict[str, str]) -> None:
    """Deployments, the deployment's page, Run, Custom run: its form, loaded. The first time for each deployment;
    after that its form's address (`forms`), as a user's browser goes back to it."""
    if deployment in forms:
        page.goto(forms[deployment])
        expect(page.get_by_label("Run Name", exact=True)).not_to_have_value("")
        expect(page.get_by_label("repo", exact=True)).to_be_visible()
        return
    page.goto(origin)  # the server sends a new browser on to its default UI
    page.get_by_role("link", name="Deployments", exact=True).click()
    # its row links the deployment and its flow, both named alike, in an order that varies as it loads
    link = page.get_by_role("link", name=deployment, exact=True)
    link.and_(page.locator("[href*='/deployments/deployment/']")).first.click()
    expect(page).to_have_url(re.compile(r"/deployments/deployment/"))
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run", exact=True).click()
    expect(page.get_by_label("Run Name", exact=True)).not_to_have_value("")  # the form fills itself in once loaded
    expect(page.get_by_label("repo", exact=True)).to_be_visible()
    forms[deployment] = page.url


def _fill(page: Page, run: FormRun) -> None:
    page.get_by_label("Run Name", exact=True).fill(run.name)
    page.get_by_label("repo", exact=True).fill(run.target)
    # NetCDF files first, their paths filled, then the run's own kind: as a user who changes their mind
    _choose_kind(page, "netcdf")
    _paths(page).fill("/data/to/be/replaced/*.nc")
    _choose_kind(page, run.kind)
    for label, text in run.fields.items():
        field = _paths(page) if label == "Paths" else page.get_by_label(f"{label} (Optional)", exact=True)
        field.fill(text)
    _keep(page, ARTIFACTS / f"ui-form-{run.name.split('-')[0]}.png")


def _choose_kind(page: Page, kind: str) -> None:
    select = page.get_by_role("button", name="Select Kind", exact=True)
    select.click()
    page.get_by_role("option", name=kind, exact=True).click()
    expect(select).to_have_text(kind)


def _paths(page: Page) -> Locator:
    # the Paths label names its field's tabs (str | list), not the text box under them
    return page.get_by_text("Paths (Optional)", exact=True).locator("xpath=following::textarea[1]")


def _submit(page: Page) -> str:
    """Submit the run form until the notice that the run was created shows, and the new run's id. The API answers
    503 while its SQLite is busy (2 cores run the whole stack): the user sees an error notice, waits for it to go,
    and submits again."""
    created = page.get_by_role("link", name="View run", exact=True)
    busy = page.get_by_text("error while creating flow run")
    for _ in range(10):
        page.get_by_role("button", name="Submit", exact=True).click()
        expect(created.or_(busy).first).to_be_visible()
        if created.is_visible():
            break
        expect(busy).to_have_count(0)
    href = created.first.get_attribute("href") or ""
    return re.search(r"/flow-run/([0-9a-f-]{36})", href).group(1)  # type: ignore[union-attr]


def _follow(page: Page, run_id: str, name: str, target: str) -> None:
    """The run's page: Completed, its progress artifact, its task runs by stage, and its summary naming the commit."""
    page.get_by_role("link", name="View run", exact=True).click()  # in the notice that the run was created
    expect(page).to_have_url(re.compile(run_id))
    expect(page).to_have_title(re.compile(re.escape(name)))
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


def test_runs_started_from_the_deployments_forms_for_every_kind_of_source_complete_with_the_sources_data(
    stack: Stack, s3_env: None, tmp_path: Path
) -> None:
    from tasks.storage.synthetic import SyntheticDataset

    small = SyntheticDataset(**SMALL).open()
    netcdf, zarr_store = tmp_path / "small.nc", tmp_path / "small.zarr"
    small.to_netcdf(netcdf, engine="h5netcdf")
    small.to_zarr(zarr_store, consolidated=False)
    icechunk_source = tmp_path / "source-repository"
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(str(icechunk_source))).writable_session(
        "main"
    )
    to_icechunk(synthetic(48, seed=1), session)
    session.commit("the source")
    # the ingest: a target holding day one, and a day's NetCDF file for each of two days
    ingest_target, days = str(tmp_path / "ingest-target"), tmp_path / "days"
    days.mkdir()
    for day in (0, 1):
        steps(24 * day, 24 * (day + 1)).to_netcdf(days / f"day-{day}.nc", engine="h5netcdf")
    session = icechunk.Repository.create(icechunk.local_filesystem_storage(ingest_target)).writable_session("main")
    to_icechunk(steps(0, 24), session)
    session.commit("day one")

    suffix = uuid.uuid4().hex[:8]
    runs = [
        FormRun(f"netcdf-{suffix}", "write-dataset", f"s3://{BUCKET}/ui-{suffix}", "netcdf",
                {"Paths": str(netcdf)}, lambda: small),
        FormRun(f"zarr-{suffix}", "write-dataset", str(tmp_path / "from-zarr"), "zarr",
                {"Url": str(zarr_store)}, lambda: small),
        FormRun(f"icechunk-{suffix}", "write-dataset", str(tmp_path / "from-icechunk"), "icechunk",
                {"Repo": str(icechunk_source)}, lambda: synthetic(48, seed=1)),
        FormRun(f"synthetic-{suffix}", "write-dataset", str(tmp_path / "from-synthetic"), "synthetic",
                {"Ntime": "48", "Nlat": "19", "Nlon": "36", "Time Chunk": "24"}, lambda: small),
        FormRun(f"callable-{suffix}", "write-dataset", str(tmp_path / "from-callable"), "callable",
                {"Function": "tests.sources:synthetic"}, lambda: synthetic(48)),
        FormRun(f"ingest-{suffix}", "ingest", ingest_target, "netcdf",
                {"Paths": str(days / "day-*.nc")}, lambda: steps(0, 48), snapshots=3),
    ]  # fmt: skip
    origin = stack.api.removesuffix("/api")
    started: dict[str, str] = {}
    forms: dict[str, str] = {}
    with stack.schedule_paused(stack.deployment_id("ingest", "ingest")), _browser(origin) as page:
        _log_in(page, origin, stack.auth_string)
        for run in reversed(runs):  # the NetCDF run last: its page is the one followed
            _open_form(page, origin, run.deployment, forms)
            _fill(page, run)
            started[run.name] = _submit(page)
        first = runs[0]
        _follow(page, started[first.name], first.name, first.target)

        for run in runs:
            done = stack.wait_until_done(started[run.name], timeout=300)
            assert done["state_type"] == "COMPLETED", (run.name, stack.log_text(started[run.name]))
            assert done["name"] == run.name
            assert done["deployment_id"] == stack.deployment_id(run.deployment, run.deployment)

    source = stack.wait_until_done(started[first.name])["parameters"]["source"]
    assert (source["kind"], source["paths"]) == ("netcdf", str(netcdf))
    for run in runs:
        assert len(list(open_repo(run.target).ancestry(branch="main"))) == run.snapshots, run.name
        xr.testing.assert_identical(committed(run.target), run.expected().compute())
