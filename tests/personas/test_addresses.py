"""Where a provider's base URL may point: never metadata or link-local, private only for a local provider."""

import pytest
from django.urls import reverse

from personas.addresses import HostKind, host_kind
from personas.models import Provider

FORBIDDEN = [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/v1",
    "http://[fe80::1]/v1",
    "http://[fd00:ec2::254]/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://metadata/v1",
    "http://0.0.0.0:8000/v1",
    "http://224.0.0.1/v1",
]
LOCAL = [
    "http://127.0.0.1:11434/v1",
    "http://localhost:8000/v1",
    "http://[::1]:8000/v1",
    "http://10.0.0.5/v1",
    "http://192.168.1.20:8080/v1",
    "http://172.16.3.4/v1",
    "http://[::ffff:10.1.2.3]/v1",
    "http://[fd12:3456::1]/v1",
    "http://llm.localhost/v1",
]
PUBLIC = [
    "https://api.openai.com/v1",
    "https://api.groq.com/openai/v1",
    "http://8.8.8.8/v1",
    "https://[2606:4700::1]/v1",
]


@pytest.mark.parametrize(
    ("url", "kind"),
    [(u, HostKind.FORBIDDEN) for u in FORBIDDEN]
    + [(u, HostKind.LOCAL) for u in LOCAL]
    + [(u, HostKind.PUBLIC) for u in PUBLIC],
)
def test_host_kinds(url, kind):
    assert host_kind(url) == kind


def _add(admin_client, base_url, **extra):
    data = {
        "name": "P",
        "base_url": base_url,
        "api_key": "",
        "connect_timeout_s": "10",
        "read_timeout_s": "60",
        "total_timeout_s": "600",
        **extra,
    }
    return admin_client.post(reverse("admin:personas_provider_add"), data)


@pytest.mark.django_db
@pytest.mark.parametrize("base_url", FORBIDDEN[:5])
def test_metadata_and_link_local_are_refused_even_for_a_local_provider(admin_client, base_url):
    response = _add(admin_client, base_url, is_local="on")
    assert response.status_code == 200 and "metadata or link-local" in response.content.decode()
    assert not Provider.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("base_url", LOCAL[:5])
def test_private_addresses_need_the_local_tick(admin_client, base_url):
    response = _add(admin_client, base_url)
    assert response.status_code == 200 and "loopback or private address" in response.content.decode()
    assert not Provider.objects.exists()

    assert _add(admin_client, base_url, is_local="on").status_code == 302
    assert Provider.objects.get().is_local


@pytest.mark.django_db
def test_a_public_provider_needs_no_tick(admin_client):
    assert _add(admin_client, "https://api.mistral.ai/v1").status_code == 302
    assert not Provider.objects.get().is_local
