"""The event stream reader of `llm.client` (the chat completion requests themselves run against the fake upstream)."""

import asyncio

from llm.client import sse_data


def events(lines: list[str]) -> list[str]:
    async def read() -> list[str]:
        async def source():
            for line in lines:
                yield line

        return [data async for data in sse_data(source())]

    return asyncio.run(read())


def test_each_event_ends_at_a_blank_line():
    assert events(['data: {"a": 1}', "", 'data: {"b": 2}', "", "data: [DONE]", ""]) == [
        '{"a": 1}',
        '{"b": 2}',
        "[DONE]",
    ]


def test_data_lines_of_one_event_are_joined_by_newlines_and_one_leading_space_goes():
    assert events(["data: first", "data:second", "data:  third", ""]) == ["first\nsecond\n third"]


def test_comments_other_fields_and_empty_events_are_skipped():
    assert events([": keep-alive", "", "event: message", "id: 7", "retry: 10", "data: x", "", "", ""]) == ["x"]


def test_an_event_cut_off_by_the_end_of_the_body_is_not_dispatched():
    # WHATWG HTML, server-sent events §9.2.6; the openai SDK reads it the same way.
    assert events(["data: whole", "", 'data: {"error": {"message": "cut"}}']) == ["whole"]
