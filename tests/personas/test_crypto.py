import pytest
from cryptography.fernet import MultiFernet

from personas import crypto

KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz-9876"


def test_encrypt_then_decrypt_gives_the_plaintext_back():
    token = crypto.encrypt(KEY)

    assert token != KEY
    assert KEY not in token
    assert crypto.decrypt(token) == KEY


def test_encrypting_twice_gives_different_tokens():
    assert crypto.encrypt(KEY) != crypto.encrypt(KEY)


def test_round_trip_keeps_non_ascii_text():
    assert crypto.decrypt(crypto.encrypt("clé-🔑")) == "clé-🔑"


def test_decrypt_fails_after_the_secret_key_changes(settings):
    token = crypto.encrypt(KEY)
    settings.SECRET_KEY = "a-new-secret-key-after-rotation"
    settings.SECRET_KEY_FALLBACKS = []

    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_a_token_decrypted_before_the_secret_key_changed_fails_after_it_too(settings):
    token = crypto.encrypt(KEY)
    assert crypto.decrypt(token) == KEY
    settings.SECRET_KEY = "a-new-secret-key-after-rotation"
    settings.SECRET_KEY_FALLBACKS = []

    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_a_token_is_decrypted_once_for_the_same_keys(settings, monkeypatch):
    token = crypto.encrypt(KEY)
    decrypted: list[bytes] = []
    decrypt = MultiFernet.decrypt
    monkeypatch.setattr(MultiFernet, "decrypt", lambda self, data: decrypted.append(data) or decrypt(self, data))

    assert [crypto.decrypt(token) for _ in range(3)] == [KEY] * 3
    assert decrypted == [token.encode()]


def test_decrypt_works_with_the_old_key_in_the_fallbacks(settings):
    old_secret = settings.SECRET_KEY
    token = crypto.encrypt(KEY)
    settings.SECRET_KEY = "a-new-secret-key-after-rotation"
    settings.SECRET_KEY_FALLBACKS = [old_secret]

    assert crypto.decrypt(token) == KEY


def test_encrypt_uses_the_current_key_not_a_fallback(settings):
    settings.SECRET_KEY_FALLBACKS = ["an-old-secret-key"]
    token = crypto.encrypt(KEY)
    settings.SECRET_KEY_FALLBACKS = []

    assert crypto.decrypt(token) == KEY


@pytest.mark.parametrize("token", ["", "not-a-token", "gAAAAAB-garbage", "ünïcode"])
def test_decrypt_of_garbage_raises_decryption_error(token):
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


def test_decryption_error_message_does_not_hold_the_token():
    token = crypto.encrypt(KEY)

    with pytest.raises(crypto.DecryptionError) as excinfo:
        crypto.decrypt(token[:-4] + "AAAA")

    assert token[:20] not in str(excinfo.value)


def test_mask_shows_at_most_the_last_four_characters():
    masked = crypto.mask(KEY)

    assert masked.endswith("9876")
    assert "abcdefghijklmnop" not in masked
    assert sum(c in KEY for c in masked if c != "•") <= 4


def test_mask_of_a_short_secret_shows_none_of_it():
    masked = crypto.mask("sk-short")

    assert masked
    assert not any(c in "sk-short" for c in masked)


def test_mask_of_nothing_is_empty():
    assert crypto.mask("") == ""
