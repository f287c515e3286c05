"""DeltaCoalescer on its own, with a fake send: numbering, order, windows, snapshots."""

import asyncio

import pytest

from conversations import coalescing
from conversations.coalescing import DeltaCoalescer


class Recorder:
    """A send that records (seq, text) and how many sends ran at once.

    delay_s: each send takes this long divided by its seq, so without the
    coalescer's ordering a later delta would overtake an earlier one.
    """

    def __init__(self, delay_s: float = 0) -> None:
        self.sent: list[tuple[int, str]] = []
        self.delay_s = delay_s
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, seq: int, text: str) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.delay_s:
            await asyncio.sleep(self.delay_s / seq)
        self.sent.append((seq, text))
        self.in_flight -= 1


async def test_first_piece_goes_out_alone_at_once():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=lambda: 60)
    deltas.push("Hel")
    deltas.push("lo")  # read before the first delta's task ran: it waits for the window
    await asyncio.sleep(0)  # that task's first step
    assert send.sent == [(1, "Hel")]
    await deltas.close()


async def test_a_push_never_waits_for_a_send():
    # The pusher reads an upstream response: it must go on reading while a delta is sent (a channel layer's round
    # trip), or aiohttp drops the text it had not read when the connection is lost.
    send = Recorder(delay_s=60)
    deltas = DeltaCoalescer(send, window_s=lambda: 0)
    for piece in ["a", "b", "c"]:
        deltas.push(piece)
        await asyncio.sleep(0)
    assert deltas.text == "abc" and send.in_flight == 1 and send.sent == []
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()


async def test_a_delta_flushed_before_the_first_ones_send_started_still_goes_second():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=lambda: 60)
    deltas.push("a")
    deltas.push("b")
    await deltas.close()  # no turn of the loop in between: the first delta's task has not run yet
    assert send.sent == [(1, "a"), (2, "b")]


async def test_later_pieces_wait_for_the_window_and_go_out_as_one_delta():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=lambda: 60)
    for piece in ["a", "b", "c", "d"]:
        deltas.push(piece)
    await asyncio.sleep(0)  # the first delta's task
    assert send.sent == [(1, "a")]  # b, c, d wait for the window
    assert deltas.text == "abcd" and deltas.sent_text == "a" and deltas.seq == 1
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "bcd")]


async def test_the_window_timer_flushes_by_itself():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=lambda: 0)
    deltas.push("a")
    deltas.push("b")
    deltas.push("c")
    while len(send.sent) < 2:
        await asyncio.sleep(0)
    assert send.sent == [(1, "a"), (2, "bc")]
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "bc")]  # nothing pending: no empty delta


async def test_slow_sends_never_overlap_or_reorder():
    send = Recorder(delay_s=0.01)
    deltas = DeltaCoalescer(send, window_s=lambda: 0)
    for i in range(5):
        deltas.push(str(i))
        await asyncio.sleep(0)
    await asyncio.gather(deltas.flush(), deltas.flush())
    await deltas.close()
    seqs = [seq for seq, _ in send.sent]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 1
    assert "".join(text for _, text in send.sent) == "01234"
    assert send.most_in_flight == 1


async def test_snapshot_matches_the_numbered_deltas():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=lambda: 60)
    deltas.push("x")
    deltas.push("y")
    await deltas.flush()
    deltas.push("z")
    assert (deltas.seq, deltas.sent_text) == (2, "xy")
    assert "".join(text for _, text in send.sent) == deltas.sent_text
    await deltas.close()


async def test_close_returns_once_every_delta_is_sent():
    # The final bubble follows close(): no delta may still be on its way then.
    send = Recorder(delay_s=0.05)
    deltas = DeltaCoalescer(send, window_s=lambda: 0)
    deltas.push("a")
    await asyncio.sleep(0)  # its send under way
    deltas.push("b")
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "b")]


async def test_close_without_text_sends_nothing():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=lambda: 60)
    await deltas.close()
    assert send.sent == [] and deltas.seq == 0


async def test_each_window_asks_how_long_it_is():
    send = Recorder()
    widths = iter([0.01, 0.3])
    asked: list[float] = []

    def window() -> float:
        asked.append(next(widths))
        return asked[-1]

    deltas = DeltaCoalescer(send, window_s=window)
    deltas.push("a")  # Delta 1, at once.
    deltas.push("b")  # A window of 10 ms.
    await asyncio.sleep(0.1)
    assert send.sent == [(1, "a"), (2, "b")]
    deltas.push("c")  # A window of 300 ms, asked now.
    await asyncio.sleep(0.1)
    assert send.sent[-1] == (2, "b") and asked == [0.01, 0.3]
    await deltas.close()
    assert send.sent[-1] == (3, "c")


async def test_a_reader_that_paces_itself_gets_its_text_sent_when_it_asks_and_no_timer():
    send = Recorder()
    windows = iter([60, 0, 0])  # After the first `pace`, a window of 0 would flush a timer's text at once.
    deltas = DeltaCoalescer(send, window_s=lambda: next(windows))
    deltas.push("a")  # Delta 1, at once.
    deltas.push("b")  # Read with "a", before the reader first asked: a timer of 60 s.
    deltas.push("c")
    assert deltas.pace() == 60  # The reader waits that long before its next read; "bc" goes now.
    await asyncio.sleep(0.01)
    assert send.sent == [(1, "a"), (2, "bc")]
    deltas.push("d")
    await asyncio.sleep(0.01)
    assert send.sent == [(1, "a"), (2, "bc")]  # No timer: "d" waits for the reader's next `pace`.
    assert deltas.pace() == 0
    deltas.push("e")
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "bc"), (3, "d"), (4, "e")]


async def test_close_right_after_pace_still_sends_in_order():
    send = Recorder(delay_s=0.05)
    deltas = DeltaCoalescer(send, window_s=lambda: 60)
    deltas.push("a")
    deltas.push("b")
    deltas.pace()  # Its send's task has not started yet, nor has the first one's.
    deltas.push("c")
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "b"), (3, "c")] and send.most_in_flight == 1


@pytest.mark.parametrize(
    ("base_ms", "widest_ms", "streaming", "window_ms"),
    [
        (40, 120, 1, 40),
        (40, 120, 25, 40),
        (40, 120, 50, 80),  # Twice the replies of FULL_RATE_REPLIES: twice as wide.
        (40, 120, 100, 120),  # No wider than CHAT_COALESCE_MAX_MS.
        (40, 40, 100, 40),  # A fixed window.
        (40, 10, 100, 40),  # A smaller "widest" never narrows it.
        (0, 120, 100, 0),  # No coalescing stays none.
    ],
)
def test_the_window_widens_with_the_replies_streaming_in_the_process(
    settings, base_ms, widest_ms, streaming, window_ms
):
    settings.CHAT_COALESCE_MS, settings.CHAT_COALESCE_MAX_MS = base_ms, widest_ms
    assert coalescing.FULL_RATE_REPLIES == 25
    assert coalescing.window_s(streaming=streaming) == pytest.approx(window_ms / 1000)
