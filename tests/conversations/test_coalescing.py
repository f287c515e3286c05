"""DeltaCoalescer on its own, with a fake send: numbering, order, windows, snapshots."""

import asyncio

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


async def test_first_piece_goes_out_at_once():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=60)
    await deltas.push("Hel")
    assert send.sent == [(1, "Hel")]


async def test_later_pieces_wait_for_the_window_and_go_out_as_one_delta():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=60)
    for piece in ["a", "b", "c", "d"]:
        await deltas.push(piece)
    assert send.sent == [(1, "a")]  # b, c, d wait for the window
    assert deltas.text == "abcd" and deltas.sent_text == "a" and deltas.seq == 1
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "bcd")]


async def test_the_window_timer_flushes_by_itself():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=0)
    await deltas.push("a")
    await deltas.push("b")
    await deltas.push("c")
    while len(send.sent) < 2:
        await asyncio.sleep(0)
    assert send.sent == [(1, "a"), (2, "bc")]
    await deltas.close()
    assert send.sent == [(1, "a"), (2, "bc")]  # nothing pending: no empty delta


async def test_slow_sends_never_overlap_or_reorder():
    send = Recorder(delay_s=0.01)
    deltas = DeltaCoalescer(send, window_s=0)
    pushes = [deltas.push(str(i)) for i in range(5)]
    await asyncio.gather(*pushes, deltas.flush(), deltas.flush())
    await deltas.close()
    seqs = [seq for seq, _ in send.sent]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 1
    assert "".join(text for _, text in send.sent) == "01234"
    assert send.most_in_flight == 1


async def test_snapshot_matches_the_numbered_deltas():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=60)
    await deltas.push("x")
    await deltas.push("y")
    await deltas.flush()
    await deltas.push("z")
    assert (deltas.seq, deltas.sent_text) == (2, "xy")
    assert "".join(text for _, text in send.sent) == deltas.sent_text
    await deltas.close()


async def test_close_without_text_sends_nothing():
    send = Recorder()
    deltas = DeltaCoalescer(send, window_s=60)
    await deltas.close()
    assert send.sent == [] and deltas.seq == 0
