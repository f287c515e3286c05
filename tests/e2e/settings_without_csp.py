"""The site's settings with its Content-Security-Policy switched off.

For browser tests that must show the sanitizer and the escaping alone keep
user and model text inert: a CSP would block an injected script or a request
to another origin and so hide a sanitizer bug. Run a server with
``DJANGO_SETTINGS_MODULE=tests.e2e.settings_without_csp``.
"""

from chatsite.settings import *  # noqa: F403
from chatsite.settings import MIDDLEWARE

MIDDLEWARE = [name for name in MIDDLEWARE if not name.startswith("csp.")]
CONTENT_SECURITY_POLICY = None
CONTENT_SECURITY_POLICY_REPORT_ONLY = None
