"""A fake OpenID Connect provider on loopback, for sign-in tests: discovery, authorize, token, userinfo, JWKS.

A real HTTP server (stdlib ``http.server`` in a thread) speaking OpenID
Connect Core 1.0's authorization code flow, so django-allauth's
``openid_connect`` provider runs against it unchanged and nothing reaches
the internet:

* ``GET /.well-known/openid-configuration``: the discovery document
  (OpenID Connect Discovery 1.0, section 3);
* ``GET /authorize``: signs the browser in as ``user`` at once (no form) and
  redirects to ``redirect_uri`` with ``code`` and ``state`` (Core 3.1.2.5);
  an unknown ``client_id`` or a ``redirect_uri`` not registered is refused
  with 400, never redirected (Core 3.1.2.6);
* ``POST /token``: exchanges a code once for an access token and an
  ``id_token`` signed with RS256 (Core 3.1.3.3), the client authenticated by
  ``client_secret_post`` or ``client_secret_basic`` (Core 9), the code's
  ``redirect_uri`` matched, and PKCE's ``code_verifier`` checked when the
  authorize request had a ``code_challenge`` (RFC 7636, S256);
* ``GET /userinfo``: the user's claims for a bearer access token (Core 5.3);
* ``GET /jwks``: the public signing key as a JWK Set (RFC 7517).

``requests`` lists (method, path) of every request, for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

ID_TOKEN_LIFETIME_S = 300


@dataclass
class FakeUser:
    """The identity the provider vouches for: claims of OpenID Connect Core 5.1."""

    sub: str = "fake-user-1"
    email: str = "ada@school.example"
    email_verified: bool = True
    preferred_username: str = "ada"
    name: str = "Ada Lovelace"

    def claims(self) -> dict:
        return {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "preferred_username": self.preferred_username,
            "name": self.name,
        }


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str | None
    user: FakeUser


@dataclass
class FakeOIDCProvider:
    """Run with ``with FakeOIDCProvider(client_id=..., client_secret=...) as provider:``; ``issuer`` is its URL.

    ``redirect_uris``: the registered callback URLs (empty: any URL on one of
    ``redirect_hosts``, for a test server on a free port).
    """

    client_id: str = "chat-site"
    client_secret: str = "fake-client-secret"
    redirect_uris: list[str] = field(default_factory=list)
    redirect_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    user: FakeUser = field(default_factory=FakeUser)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = secrets.token_hex(8)
        self._codes: dict[str, _Grant] = {}
        self._tokens: dict[str, FakeUser] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        assert self._server is not None, "start the provider first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeOIDCProvider:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "email", "email_verified", "preferred_username", "name"],
        }

    def jwks(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**jwk, "kid": self._kid, "use": "sig", "alg": "RS256"}]}

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {
            **grant.user.claims(),
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_S,
            "auth_time": now,
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})

    def redirect_allowed(self, uri: str) -> bool:
        if self.redirect_uris:
            return uri in self.redirect_uris
        return urlsplit(uri).hostname in self.redirect_hosts

    def authorize(self, query: dict[str, str]) -> tuple[int, dict]:
        if query.get("client_id") != self.client_id or not self.redirect_allowed(query.get("redirect_uri", "")):
            return 400, {"error": "invalid_request", "error_description": "unknown client or redirect_uri"}
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            error = {"error": "unsupported_response_type", "state": query.get("state", "")}
            return 302, {"Location": f"{query['redirect_uri']}?{urlencode(error)}"}
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                client_id=query["client_id"],
                redirect_uri=query["redirect_uri"],
                nonce=query.get("nonce"),
                code_challenge=query.get("code_challenge"),
                user=self.user,
            )
        answer = {"code": code, "state": query.get("state", "")}
        return 302, {"Location": f"{query['redirect_uri']}?{urlencode(answer)}"}

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict]:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if client_id != self.client_id or client_secret != self.client_secret:
            return 401, {"error": "invalid_client"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 400, {"error": "invalid_grant"}
        if grant.client_id != client_id or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri differs"}
        if grant.code_challenge:
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.code_challenge:
                return 400, {"error": "invalid_grant", "error_description": "code_verifier"}
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[access_token] = grant.user
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": self.id_token(grant),
        }

    def userinfo(self, authorization: str) -> tuple[int, dict]:
        user = self._tokens.get(authorization.removeprefix("Bearer ")) if authorization.startswith("Bearer ") else None
        if user is None:
            return 401, {"error": "invalid_token"}
        return 200, user.claims()


def _handler(provider: FakeOIDCProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:  # quiet test output
            pass

        def _answer(self, status: int, body: dict) -> None:
            if status == 302:
                self.send_response(302)
                self.send_header("Location", body["Location"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            provider.requests.append(("GET", url.path))
            query = {name: values[0] for name, values in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._answer(200, provider.discovery())
            elif url.path == "/jwks":
                self._answer(200, provider.jwks())
            elif url.path == "/authorize":
                self._answer(*provider.authorize(query))
            elif url.path == "/userinfo":
                self._answer(*provider.userinfo(self.headers.get("Authorization", "")))
            else:
                self._answer(404, {"error": "not_found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            provider.requests.append(("POST", url.path))
            length = int(self.headers.get("Content-Length") or 0)
            form = {name: values[0] for name, values in parse_qs(self.rfile.read(length).decode()).items()}
            if url.path == "/token":
                self._answer(*provider.token(form, self.headers.get("Authorization", "")))
            else:
                self._answer(404, {"error": "not_found"})

    return Handler
