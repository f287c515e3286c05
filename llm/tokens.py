"""Count prompt tokens offline: exactly for OpenAI's model families, about right for the rest.

OpenAI's models tokenize with tiktoken's `o200k_base` (gpt-4o and later,
the o-series) or `cl100k_base` (gpt-4, gpt-3.5-turbo, text-embedding-3).
tiktoken downloads those encodings on first use, which fails on an offline
server, so the project ships the two `.tiktoken` files in
`llm/data/` (their origin and sha256 are in the README there) and
builds each `tiktoken.Encoding` from them the way
`tiktoken_ext/openai_public.py` does, with the same split pattern, special
tokens and expected hashes. No code path here reaches the network.

The files are read and checked here rather than through tiktoken's
`load_tiktoken_bpe`, which copies every file it loads into a cache directory
(TIKTOKEN_CACHE_DIR, else the system temp dir) and skips the hash check
altogether when that variable is set empty.

Every other model (Llama, Qwen, Mistral, DeepSeek, Gemini, Claude through a
compatible endpoint, ...) has its own tokenizer, which this site does not
have; for them `count_tokens` returns an estimate, see `ESTIMATE_FACTOR`.

An `Encoding` takes a few hundred ms to build and is immutable afterwards,
so each process builds each one once, on first use (`_encoding`). Callers
on an event loop should make that first call off the loop or accept the
one-off pause.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import tiktoken

DATA_DIR = Path(__file__).resolve().parent / "data"

# Token overhead of the chat format, from the OpenAI Cookbook, "How to count
# tokens with tiktoken" (num_tokens_from_messages): every message is wrapped
# as <|start|>{role}<|message|>{content}<|end|>, three tokens besides the role
# and content, and every reply is primed with <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3

# Unknown tokenizers are estimated as the cl100k_base count times this factor,
# rounded up (a Fraction, so 50 tokens give 55, not float's 56). Modern
# open-weight tokenizers (Llama 3's 128K vocabulary is built on tiktoken's;
# Qwen, DeepSeek and Gemini use 100K+ vocabularies) need about as many tokens
# as cl100k_base or fewer; older 32K SentencePiece vocabularies (Llama 2,
# Mistral 7B) need somewhat more on English prose. Erring high is the safe
# side: an overestimate costs one old message left out of the prompt, an
# underestimate a request the upstream rejects as too long. Chinese, Japanese
# and Korean text is where the factor alone runs low: cl100k_base merges many
# common CJK characters, while smaller vocabularies spell each character as one
# token or several bytes (a llama.cpp model took 4,050 tokens for Chinese text
# estimated at 2,945). So an estimate never counts fewer than one token per
# CJK character, plus the estimate of the rest of the text (`_CJK`).
ESTIMATE_FACTOR = Fraction(11, 10)

# Han (with extensions and compatibility ideographs), kana, Hangul, and CJK and
# fullwidth punctuation: the characters an unknown tokenizer may spend a token on each.
_CJK = re.compile(
    "[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]"
)

# Pattern and special tokens copied from tiktoken_ext/openai_public.py
# (tiktoken 0.14.0); tests compare them with tiktoken's own definitions.
_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

_ENCODINGS: dict[str, dict] = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501 - tiktoken's pattern, verbatim
        "special_tokens": {
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        "special_tokens": {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    },
}

# Model families, after tiktoken.model's MODEL_TO_ENCODING and
# MODEL_PREFIX_TO_ENCODING (tiktoken 0.14.0). A family name must end the id
# or be followed by a separator, so "gpt-4" does not claim "gpt-4o" or
# "gpt-4.1". gpt-oss uses o200k_harmony, whose ranks and pattern are
# o200k_base's, so plain text counts the same.
_FAMILIES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"(?:chatgpt-4o|gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|o[1-9])(?:$|[-.:@_])"),
        "o200k_base",
    ),
    (
        re.compile(
            r"(?:gpt-4|gpt-3\.5-turbo|gpt-35-turbo|text-embedding-3-(?:small|large)|text-embedding-ada-002"
            r"|davinci-002|babbage-002)(?:$|[-:@_])"
        ),
        "cl100k_base",
    ),
]


def encoding_name_for(model_id: str) -> str | None:
    """Return the tiktoken encoding of `model_id` ("o200k_base", "cl100k_base"), or None if unknown.

    The id is matched case-insensitively after dropping a router's
    "vendor/" prefix ("openai/gpt-4o") and a fine-tune's "ft:" prefix
    ("ft:gpt-4o-mini:org::id").
    """
    name = model_id.strip().lower().rsplit("/", 1)[-1].removeprefix("ft:")
    for pattern, encoding in _FAMILIES:
        if pattern.match(name):
            return encoding
    return None


ESTIMATE_COUNTER = "estimate"


def counter_name(model_id: str) -> str:
    """Return the name of what `count_tokens` counts `model_id`'s text with: its encoding, or "estimate".

    Counts stored with one name stay valid for any model with the same name.
    """
    return encoding_name_for(model_id) or ESTIMATE_COUNTER


def is_exact(model_id: str) -> bool:
    """Return whether counts for `model_id` are its real tokenizer's, not an estimate."""
    return encoding_name_for(model_id) is not None


def _load_ranks(path: Path, sha256: str) -> dict[bytes, int]:
    """Return the mergeable ranks in the `.tiktoken` file at `path`: lines of "<base64 token> <rank>".

    Raises:
        ValueError: the file's sha256 is not `sha256`.
    """
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path} is damaged: its sha256 is not {sha256}. Restore it from the release.")
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}


@functools.cache
def _encoding(name: str) -> tiktoken.Encoding:
    """Build encoding `name` from its shipped file, once per process.

    Raises:
        ValueError: the shipped file does not match its sha256.
    """
    spec = _ENCODINGS[name]
    ranks = _load_ranks(DATA_DIR / f"{name}.tiktoken", spec["sha256"])
    return tiktoken.Encoding(
        name=name, pat_str=spec["pat_str"], mergeable_ranks=ranks, special_tokens=spec["special_tokens"]
    )


def encodings_load() -> None:
    """Build every shipped encoding now (about 0.3 s), so that no send pays for it: the first would, in each process.

    Raises:
        ValueError: a shipped file does not match its sha256.
    """
    for name in _ENCODINGS:
        _encoding(name)


def count_tokens(text: str, *, model_id: str) -> int:
    """Return how many tokens `text` is for `model_id`: exact when `is_exact(model_id)`, else about.

    Special-token strings such as "<|endoftext|>" in the text count as the
    plain text they are, as the API treats user content. An estimate is at
    least one token per CJK character plus the estimate of the other text.
    """
    if not text:
        return 0
    name = encoding_name_for(model_id)
    if name is not None:
        return len(_encoding(name).encode_ordinary(text))
    estimate = _estimate(text)
    cjk_chars = len(_CJK.findall(text))
    if cjk_chars:
        estimate = max(estimate, cjk_chars + _estimate(_CJK.sub("", text)))
    return estimate


def _estimate(text: str) -> int:
    return math.ceil(len(_encoding("cl100k_base").encode_ordinary(text)) * ESTIMATE_FACTOR) if text else 0


def count_message_tokens(message: dict[str, Any], *, model_id: str, content_tokens: int | None = None) -> int:
    """Return the tokens one chat message {"role", "content"[, "name"]} adds to a prompt.

    Each value is counted, plus `TOKENS_PER_MESSAGE`, plus one for a "name"
    (OpenAI Cookbook, "How to count tokens with tiktoken"). `content_tokens`:
    the content's count when already known (`count_tokens` of it, by the same
    `counter_name`), so the content is not tokenized again. Content parts
    (a list) count their text, and `IMAGE_TOKENS_DEFAULT` per image unless
    `content_tokens` gives the whole (the caller knows the images' sizes: `image_tokens`).
    """
    tokens = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content" and content_tokens is not None:
            tokens += content_tokens
        elif isinstance(value, list):
            tokens += sum(
                count_tokens(part.get("text", ""), model_id=model_id)
                if part.get("type") == "text"
                else IMAGE_TOKENS_DEFAULT
                for part in value
            )
        else:
            tokens += count_tokens(value, model_id=model_id)
    return tokens + 1 if "name" in message else tokens


# OpenAI's vision pricing ("Images and vision", Calculating costs, high detail): the image is
# scaled to fit 2048 × 2048, then its shortest side to 768; each 512-pixel tile costs 170 tokens,
# plus 85 for the image. 765 tokens: a 1024 × 1024 image, the count when the size is unknown.
IMAGE_TOKENS_BASE = 85
IMAGE_TOKENS_PER_TILE = 170
IMAGE_TOKENS_DEFAULT = 765


def image_tokens(width: int, height: int) -> int:
    """Return about what an image of `width` × `height` pixels costs in a prompt (OpenAI's high-detail rule)."""
    if width <= 0 or height <= 0:
        return IMAGE_TOKENS_DEFAULT
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return IMAGE_TOKENS_BASE + IMAGE_TOKENS_PER_TILE * tiles


def count_chat_tokens(messages: list[dict[str, Any]], *, model_id: str) -> int:
    """Return the prompt tokens of a chat completion request with `messages`, reply priming included.

    Follows the OpenAI Cookbook's "How to count tokens with tiktoken"
    (num_tokens_from_messages): 3 tokens per message, its values, 1 per
    name, and 3 priming the reply. Exact for OpenAI's chat models up to the
    cookbook's own accuracy; about for others, whose chat templates add a
    similar handful of tokens per message.
    """
    return REPLY_PRIMING_TOKENS + sum(count_message_tokens(m, model_id=model_id) for m in messages)
