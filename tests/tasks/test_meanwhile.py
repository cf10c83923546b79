"""A run's cluster is connected to (or started) while the run initializes: `entered_meanwhile`."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tasks.running.meanwhile import entered_meanwhile


class Cluster:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.may_start = threading.Event()
        self.entered_in: str | None = None
        self.left_with: list[BaseException | None] = []

    @contextmanager
    def running(self) -> Iterator[str]:
        self.may_start.wait(10)
        self.entered_in = threading.current_thread().name
        if self.fails:
            raise ConnectionError("no scheduler at tcp://nowhere:8786")
        try:
            yield "cluster"
        except BaseException as e:
            self.left_with.append(e)
            raise
        self.left_with.append(None)


def test_the_caller_goes_on_while_the_manager_is_entered_and_leaves_it_once_done() -> None:
    cluster = Cluster()
    with entered_meanwhile(cluster.running()) as runner:
        assert cluster.entered_in is None  # still starting: the caller was not held up
        cluster.may_start.set()
        assert runner() == "cluster"
        assert cluster.left_with == []
    assert cluster.entered_in != threading.current_thread().name
    assert cluster.left_with == [None]


def test_a_caller_that_fails_before_it_waited_still_leaves_the_manager_with_its_error() -> None:
    cluster = Cluster()

    def refused_run() -> None:
        with entered_meanwhile(cluster.running()):
            cluster.may_start.set()
            raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        refused_run()
    assert [type(e) for e in cluster.left_with] == [ValueError]


def test_a_manager_that_cannot_be_entered_fails_whoever_waits_for_it_and_no_one_else() -> None:
    cluster = Cluster(fails=True)
    cluster.may_start.set()
    with entered_meanwhile(cluster.running()):
        pass  # a run with nothing to write never needed its cluster
    with entered_meanwhile(cluster.running()) as runner, pytest.raises(ConnectionError, match="no scheduler"):
        runner()
    assert cluster.left_with == []
