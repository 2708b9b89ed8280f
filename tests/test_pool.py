"""The decode pool runs the lowest-ranked task first (``bigsmall.io.pool``)."""

from __future__ import annotations

import threading

import pytest

from bigsmall.io.pool import PriorityPool


def _blocked(pool: PriorityPool) -> threading.Event:
    """Occupy the pool's only worker until the returned event is set, so that what is
    submitted meanwhile queues up."""
    gate = threading.Event()
    started = threading.Event()

    def block() -> None:
        started.set()
        gate.wait(10)

    pool.submit_ranked(-100, block)
    assert started.wait(10)
    return gate


def test_lowest_rank_first_then_submission_order() -> None:
    pool = PriorityPool(1)
    try:
        gate = _blocked(pool)
        order: list[str] = []
        futs = [pool.submit_ranked(rank, order.append, name)
                for rank, name in [(3, "c"), (1, "a1"), (2, "b"), (1, "a2"), (0, "z")]]
        futs.append(pool.submit(order.append, "urgent"))  # a plain submit ranks before all
        gate.set()
        for f in futs:
            f.result(10)
        assert order == ["urgent", "z", "a1", "a2", "b", "c"]
    finally:
        pool.shutdown()


def test_results_and_exceptions_reach_the_future() -> None:
    pool = PriorityPool(2)
    try:
        assert pool.submit_ranked(5, pow, 2, 10).result(10) == 1024
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 // 0).result(10)
        assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
    finally:
        pool.shutdown()


def test_shutdown_runs_what_is_queued_and_refuses_more() -> None:
    pool = PriorityPool(1)
    gate = _blocked(pool)
    done: list[int] = []
    futs = [pool.submit_ranked(i, done.append, i) for i in range(5)]
    gate.set()
    pool.shutdown(wait=True)
    assert done == [0, 1, 2, 3, 4] and all(f.done() for f in futs)
    with pytest.raises(RuntimeError):
        pool.submit(done.append, 9)


def test_shutdown_can_cancel_what_is_queued() -> None:
    pool = PriorityPool(1)
    gate = _blocked(pool)
    futs = [pool.submit_ranked(i, int, i) for i in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    gate.set()
    pool.shutdown(wait=True)
    assert all(f.cancelled() for f in futs)


def test_needs_a_thread() -> None:
    with pytest.raises(ValueError):
        PriorityPool(0)
