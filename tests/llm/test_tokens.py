"""Token counts: tiktoken's reference numbers, from the shipped encodings, never from the network."""

import hashlib
import math
import shutil
import socket

import pytest
import tiktoken.load
from django.apps import apps
from tiktoken_ext import openai_public

from conversations import serving
from llm import tokens

# The OpenAI Cookbook's example conversation in "How to count tokens with
# tiktoken"; the cookbook prints 129 prompt tokens for gpt-3.5-turbo and
# gpt-4-0613 and 124 for gpt-4o and gpt-4o-mini, both by its function and by
# the API's usage.
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.fixture
def fresh_encodings():
    """Forget the process's built encodings, so the test sees them loaded."""
    tokens._encoding.cache_clear()
    yield
    tokens._encoding.cache_clear()


@pytest.fixture
def no_network(monkeypatch):
    """Fail any socket connection and any file tiktoken would fetch (it fetches through `read_file`)."""

    def read_file(blobpath: str) -> bytes:
        raise AssertionError(f"tiktoken tried to fetch {blobpath}")

    def connect(self, address):
        raise AssertionError(f"network connection attempted to {address!r}")

    monkeypatch.setattr(tiktoken.load, "read_file", read_file)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.mark.parametrize(
    ("text", "model_id", "expected"),
    [
        ("hello world", "gpt-4", 2),
        ("hello world", "gpt-4o", 2),
        ("tiktoken is great!", "gpt-3.5-turbo", 6),
        ("tiktoken is great!", "gpt-4o-mini", 6),
        # The cookbook's encoding comparison: cl100k_base vs o200k_base.
        ("antidisestablishmentarianism", "gpt-4", 6),
        ("antidisestablishmentarianism", "gpt-4o", 6),
        ("2 + 2 = 4", "gpt-4", 7),
        ("2 + 2 = 4", "gpt-4o", 7),
        ("お誕生日おめでとう", "gpt-4", 9),
        ("お誕生日おめでとう", "gpt-4o", 8),
        ("", "gpt-4o", 0),
    ],
)
def test_count_tokens_matches_tiktoken_reference_counts(text, model_id, expected):
    assert tokens.count_tokens(text, model_id=model_id) == expected


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("gpt-3.5-turbo", 129),
        ("gpt-4-0613", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
    ],
)
def test_count_chat_tokens_matches_the_cookbook_example(model_id, expected):
    assert tokens.count_chat_tokens(COOKBOOK_MESSAGES, model_id=model_id) == expected


def test_count_chat_tokens_adds_three_per_message_and_three_for_the_reply():
    messages = [{"role": "system", "content": "hello world"}, {"role": "user", "content": "hello world"}]

    # "system", "user": 1 token each; "hello world": 2.
    assert tokens.count_chat_tokens(messages, model_id="gpt-4o") == (3 + 1 + 2) * 2 + 3
    assert tokens.count_chat_tokens([], model_id="gpt-4o") == 3


def test_a_name_costs_its_tokens_and_one_more():
    plain = {"role": "user", "content": "hello world"}
    named = {**plain, "name": "alice"}

    extra = tokens.count_message_tokens(named, model_id="gpt-4") - tokens.count_message_tokens(plain, model_id="gpt-4")

    assert extra == tokens.count_tokens("alice", model_id="gpt-4") + 1


def test_special_token_text_counts_as_plain_text():
    count = tokens.count_tokens("<|endoftext|>", model_id="gpt-4o")

    assert count > 1  # not the single special token, and no error for disallowed special text


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5.1-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o1-preview", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-oss-120b", "o200k_base"),
        ("GPT-4o", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-32k", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("llama-3.1-8b-instant", None),
        ("meta-llama/Llama-3.3-70B-Instruct", None),
        ("qwen2.5:7b", None),
        ("mistral-large-latest", None),
        ("deepseek-chat", None),
        ("gemini-2.0-flash", None),
        ("claude-3-5-sonnet-latest", None),
        ("fake-echo", None),
        ("gpt-4x-alpaca", None),
        ("gpt-40", None),
        ("o1mini", None),
    ],
)
def test_encoding_name_for_maps_model_families(model_id, expected):
    assert tokens.encoding_name_for(model_id) == expected
    assert tokens.is_exact(model_id) is (expected is not None)


@pytest.mark.parametrize(
    "text",
    [
        "The quick brown fox jumps over the lazy dog. " * 20,
        "def add(a, b):\n    return a + b\n" * 10,
    ],
)
def test_unknown_models_get_the_documented_estimate(text):
    cl100k = tokens.count_tokens(text, model_id="gpt-4")

    estimate = tokens.count_tokens(text, model_id="llama3.1:8b")

    assert estimate == math.ceil(cl100k * tokens.ESTIMATE_FACTOR)
    assert estimate > cl100k
    assert estimate >= len(text.split())  # every word is at least one token in any of these tokenizers


@pytest.mark.parametrize(
    "text",
    [
        "我们今天去公园散步，天气非常好。" * 10,
        "我們今天去公園散步，天氣非常好。" * 10,
        # cl100k_base spends one token on each of these common pairs: x1.1 alone would count 44 for 80 characters.
        "我们中国我们中国。。" * 8,
        "今日は公園を散歩しました。とても良い天気でした。" * 5,
        "오늘 공원에서 산책했어요. 날씨가 정말 좋았어요." * 5,
        "Mixed 中文 and English: 人工智能 (AI) models 需要 tokens." * 8,
    ],
)
def test_an_estimate_never_counts_fewer_tokens_than_cjk_characters(text):
    cjk_chars = sum(1 for ch in text if ch >= "\u3000" and not ch.isascii())
    non_cjk = "".join(ch for ch in text if ch.isascii())

    estimate = tokens.count_tokens(text, model_id="qwen2.5:7b")

    assert estimate >= cjk_chars + tokens.count_tokens(non_cjk, model_id="qwen2.5:7b")
    assert estimate >= cjk_chars
    assert estimate >= math.ceil(tokens.count_tokens(text, model_id="gpt-4") * tokens.ESTIMATE_FACTOR)


def test_exact_counts_are_not_raised_for_cjk_text():
    text = "我们今天去公园散步，天气非常好。" * 10
    assert tokens.count_tokens(text, model_id="gpt-4o") == len(tokens._encoding("o200k_base").encode_ordinary(text))


def test_the_estimate_rounds_up_exactly():
    text = " ".join(["hello world"] * 25)  # 50 tokens in cl100k_base: 1.1 times that is 55, not float's 56

    assert tokens.count_tokens(text, model_id="gpt-4") == 50
    assert tokens.count_tokens(text, model_id="mistral-small") == 55


def test_encodings_load_from_the_shipped_files_without_network(fresh_encodings, no_network, monkeypatch, tmp_path):
    cache = tmp_path / "tiktoken-cache"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))  # empty: nothing tiktoken cached earlier can help

    assert tokens.count_tokens("hello world", model_id="gpt-4o") == 2
    assert tokens.count_tokens("hello world", model_id="gpt-4") == 2

    assert tokens._encoding.cache_info().currsize == 2
    assert not cache.exists()  # and no copy of the files written anywhere


def test_an_encoding_is_built_once_per_process(fresh_encodings, no_network):
    tokens.count_tokens("hello", model_id="gpt-4o")
    tokens.count_tokens("world", model_id="gpt-4o-mini")
    tokens.count_chat_tokens([{"role": "user", "content": "again"}], model_id="gpt-5")

    assert tokens._encoding.cache_info().misses == 1


def test_a_tampered_encoding_file_is_refused(fresh_encodings, no_network, monkeypatch, tmp_path):
    shipped = (tokens.DATA_DIR / "cl100k_base.tiktoken").read_bytes()
    (tmp_path / "cl100k_base.tiktoken").write_bytes(shipped.replace(b" 0\n", b" 1\n", 1))
    monkeypatch.setattr(tokens, "DATA_DIR", tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # where tiktoken's own loader would skip its hash check

    with pytest.raises(ValueError, match="is damaged"):
        tokens.count_tokens("hello", model_id="gpt-4")


@pytest.mark.parametrize(
    ("name", "constructor"), [("cl100k_base", openai_public.cl100k_base), ("o200k_base", openai_public.o200k_base)]
)
def test_encodings_equal_tiktoken_own_definitions(name, constructor, no_network, monkeypatch, tmp_path):
    # Seed tiktoken's download cache (keyed by the URL's sha1) with the shipped file, so
    # tiktoken's own constructor builds its definition offline, checking its own hash.
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    shutil.copy(tokens.DATA_DIR / f"{name}.tiktoken", tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    reference = constructor()

    ours = tokens._encoding(name)

    assert ours._pat_str == reference["pat_str"]
    assert ours._special_tokens == reference["special_tokens"]
    assert ours._mergeable_ranks == reference["mergeable_ranks"]


def test_counting_a_long_message_is_cheap_enough_to_do_per_send():
    # Speed sanity without a timing assert: 32,000 characters of mixed prose,
    # code and CJK count in a few ms (bench it with `python -m timeit` if in doubt).
    text = ("Plain English prose, numbers 12345, code `x = f(y)`; 日本語のテキスト。\n" * 600)[:32_000]

    counts = {model_id: tokens.count_tokens(text, model_id=model_id) for model_id in ("gpt-4o", "gpt-4", "mistral")}

    assert all(len(text) / 8 < count < len(text) for count in counts.values())
    assert counts["mistral"] >= math.ceil(counts["gpt-4"] * tokens.ESTIMATE_FACTOR)


@pytest.mark.parametrize("serves", [True, False])
def test_a_process_that_serves_the_site_builds_the_encodings_before_the_first_send(monkeypatch, serves):
    monkeypatch.setattr(serving, "serves_site", lambda: serves)
    monkeypatch.setattr(
        serving, "at_start", lambda callback: None
    )  # Its own test: tests/conversations/test_serving.py.
    tokens._encoding.cache_clear()

    apps.get_app_config("conversations").ready()

    assert tokens._encoding.cache_info().currsize == (len(tokens._ENCODINGS) if serves else 0)
