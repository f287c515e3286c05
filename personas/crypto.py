"""Encryption at rest for provider API keys (Fernet, from the `cryptography` package).

Keys are derived from `SECRET_KEY` and `SECRET_KEY_FALLBACKS`: encryption uses
the current key, decryption tries every key (MultiFernet), so rotating the
secret key keeps existing provider keys readable. Source: cryptography.io,
"Fernet (symmetric encryption)" and "MultiFernet".
"""

import base64
import functools
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.views.decorators.debug import sensitive_variables


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _fernet_for(secret: str) -> Fernet:
    # HKDF is unnecessary here: SECRET_KEY already has full entropy, and
    # SHA-256 gives the 32 bytes Fernet needs; the label separates this use.
    digest = hashlib.sha256(b"chatsite.personas.crypto:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _multi_fernet() -> MultiFernet:
    return _multi_fernet_for((settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=4)
def _multi_fernet_for(secrets: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet_for(secret) for secret in secrets])


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> str:
    """Return `plaintext` encrypted with the current key, as an ASCII token."""
    return _multi_fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Return the plaintext of `token`.

    Raises:
        DecryptionError: no configured key decrypts it (the secret key changed
            without the old one in DJANGO_SECRET_KEY_FALLBACKS).
    """
    try:
        return _plaintext(token, _multi_fernet())
    except (InvalidToken, ValueError):
        raise DecryptionError("The stored API key cannot be decrypted with the current secret key.") from None


# Kept by token and keys: a provider's key is read twice for every send (its check and its request), 45 µs of
# Fernet each, 4.5 ms of the ORM thread for a class's hop of 50 sends (bench/README.md, the twentieth round). The
# plaintext is in the process anyway, in the SDK client kept for its provider (llm/client.py). Other keys (a
# rotated secret key) are another MultiFernet: the plaintexts of the old ones are not served from here.
@functools.lru_cache(maxsize=256)
def _plaintext(token: str, fernet: MultiFernet) -> str:
    return fernet.decrypt(token.encode("ascii")).decode()


def rotate(token: str) -> str:
    """Return `token` re-encrypted with the current key (MultiFernet.rotate), its plaintext unchanged.

    Raises:
        DecryptionError: no configured key decrypts it.
    """
    try:
        return _multi_fernet().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, ValueError):
        raise DecryptionError("The stored API key cannot be decrypted with the current secret key.") from None


@sensitive_variables("secret", "tail")
def mask(secret: str) -> str:
    """Return `secret` masked for display: its last four characters at most."""
    if not secret:
        return ""
    tail = secret[-4:] if len(secret) >= 12 else ""
    return f"••••••••{tail}"
