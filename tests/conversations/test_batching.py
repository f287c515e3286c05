import asyncio
import threading

import pytest

from conversations.batching import Hop, HopBatcher
from tests.waiting import async_wait_until

# Each hop runs on the ORM thread, which checks its connection first (`database_sync_to_async`).
pytestmark = pytest.mark.django_db


class Recorder:
    """A `handle` that records each hop's items; the first hop waits until `release` is set."""

    def __init__(self) -> None:
        self.hops: list[list[object]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, hop: Hop) -> list[object]:
        items = hop.items
        self.hops.append(items)
        self.started.set()
        assert self.release.wait(5)
        return [ValueError(item) if item == "bad" else f"done {item}" for item in items]


async def _started(recorder: Recorder) -> None:
    while not recorder.started.is_set():
        await asyncio.sleep(0.001)


async def test_a_lone_call_goes_at_once_and_the_calls_queued_meanwhile_go_together():
    recorder = Recorder()
    batcher = HopBatcher(recorder, max_size=10)
    first = asyncio.create_task(batcher("a"))
    await _started(recorder)  # The first hop runs, for "a" alone.
    queued = [asyncio.create_task(batcher(item)) for item in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    recorder.release.set()
    assert await first == "done a"
    assert await asyncio.gather(*queued) == ["done b", "done c", "done d"]
    assert recorder.hops == [["a"], ["b", "c", "d"]]


async def test_a_hop_takes_at_most_max_size_calls_in_the_order_they_came():
    recorder = Recorder()
    batcher = HopBatcher(recorder, max_size=2)
    first = asyncio.create_task(batcher(0))
    await _started(recorder)
    queued = [asyncio.create_task(batcher(i)) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    recorder.release.set()
    await asyncio.gather(first, *queued)
    assert recorder.hops == [[0], [1, 2], [3, 4], [5]]


async def test_an_outcome_that_is_an_exception_is_raised_to_its_caller_only():
    recorder = Recorder()
    recorder.release.set()
    batcher = HopBatcher(recorder, max_size=10)
    results = await asyncio.gather(batcher("ok"), batcher("bad"), batcher("fine"), return_exceptions=True)
    assert results[0] == "done ok" and results[2] == "done fine"
    assert isinstance(results[1], ValueError) and results[1].args == ("bad",)


async def test_an_exception_of_the_hop_is_raised_to_each_of_its_calls_and_the_next_hop_runs():
    failing = True

    def handle(hop: Hop) -> list[str]:
        if failing:
            raise RuntimeError("database is locked")
        return [item.upper() for item in hop.items]

    batcher = HopBatcher(handle, max_size=10)
    results = await asyncio.gather(batcher("a"), batcher("b"), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    failing = False
    assert await batcher("c") == "C"


async def test_a_cancelled_caller_leaves_the_others_their_outcomes():
    recorder = Recorder()
    batcher = HopBatcher(recorder, max_size=10)
    first = asyncio.create_task(batcher("a"))
    await _started(recorder)
    gone = asyncio.create_task(batcher("b"))
    kept = asyncio.create_task(batcher("c"))
    await asyncio.sleep(0.01)
    gone.cancel()
    recorder.release.set()
    assert (await first, await kept) == ("done a", "done c")
    with pytest.raises(asyncio.CancelledError):
        await gone


async def test_settle_gets_a_hops_outcomes_once_its_callers_have_them_and_the_next_hop_waits_for_it():
    recorder = Recorder()
    settled: list[list[object]] = []
    release_settle = asyncio.Event()

    async def settle(outcomes):
        settled.append([str(o) for o in outcomes])
        await release_settle.wait()

    batcher = HopBatcher(recorder, max_size=10, settle=settle)
    first = asyncio.create_task(batcher("a"))
    await _started(recorder)
    queued = [asyncio.create_task(batcher(item)) for item in ("b", "bad")]
    await asyncio.sleep(0.01)
    recorder.release.set()
    await async_wait_until(lambda: settled, timeout_s=5, message="settle was not awaited")
    assert await asyncio.wait_for(first, 5) == "done a"  # Its caller has it while settle runs.
    await asyncio.sleep(0.05)
    assert recorder.hops == [["a"]]  # The next hop waits for settle.
    release_settle.set()
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert results[0] == "done b" and isinstance(results[1], ValueError)
    # Settled after the first hop only: no call waited after the second.
    assert (recorder.hops, settled) == ([["a"], ["b", "bad"]], [["done a"]])


async def test_a_settle_that_fails_is_logged_and_the_next_hop_still_runs(caplog):
    recorder = Recorder()

    async def settle(_outcomes):
        raise RuntimeError("broken")

    batcher = HopBatcher(recorder, max_size=10, settle=settle)
    first = asyncio.create_task(batcher("a"))
    await _started(recorder)
    queued = asyncio.create_task(batcher("b"))
    await asyncio.sleep(0.01)
    recorder.release.set()
    assert (await first, await asyncio.wait_for(queued, 5)) == ("done a", "done b")
    assert "Settling a hop's outcomes failed" in caplog.text


async def test_a_hop_takes_the_calls_queued_since_it_began_when_its_handle_asks_for_more():
    """Up to max_size in all, in the order they came; the rest go in the next hop."""
    began, queued = threading.Event(), threading.Event()
    hops: list[tuple[list[object], list[object]]] = []

    def handle(hop: Hop) -> list[object]:
        first = hop.items
        if not hops:
            began.set()
            assert queued.wait(5)
        late = hop.more()
        hops.append((first, late))
        assert hop.items == first + late and hop.more() == []
        return [f"done {item}" for item in hop.items]

    batcher = HopBatcher(handle, max_size=3)
    first = asyncio.create_task(batcher("a"))
    await async_wait_until(began.is_set, timeout_s=5, message="the first hop did not start")
    others = [asyncio.create_task(batcher(item)) for item in ("b", "c", "d")]
    await asyncio.sleep(0.01)
    queued.set()
    assert await asyncio.gather(first, *others) == ["done a", "done b", "done c", "done d"]
    assert hops == [(["a"], ["b", "c"]), (["d"], [])]


async def test_an_exception_of_the_hop_is_raised_to_the_calls_it_took_late_too():
    began, queued = threading.Event(), threading.Event()

    def handle(hop: Hop) -> list[object]:
        began.set()
        assert queued.wait(5)
        hop.more()
        raise RuntimeError("database is locked")

    batcher = HopBatcher(handle, max_size=10)
    first = asyncio.create_task(batcher("a"))
    await async_wait_until(began.is_set, timeout_s=5, message="the hop did not start")
    late = asyncio.create_task(batcher("b"))
    await asyncio.sleep(0.01)
    queued.set()
    results = await asyncio.gather(first, late, return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
