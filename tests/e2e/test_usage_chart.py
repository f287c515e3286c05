"""In the browser: the usage page of a user with a month of data draws one bar per day, in both themes and languages."""

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.models import Conversation, Message
from tests.e2e.pages import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKENS_CHART = ".usage-chart:first-of-type"


@pytest.fixture
def month(alice, persona):
    """Day i before today: i + 1 exchanges of 10 + 20 tokens, for 30 days."""
    zone = timezone.get_default_timezone()
    today = timezone.localdate(timezone=zone)
    conversation = Conversation.objects.create(owner=alice, persona=persona)
    for age in range(30):
        moment = timezone.make_aware(datetime.combine(today - timedelta(days=age), time(12)), zone)
        for _ in range(age + 1):
            question = Message.objects.create(conversation=conversation, role="user", content="q", asked_by=alice)
            reply = Message.objects.create(
                conversation=conversation,
                asked_by=alice,  # Usage is counted by who asked.
                parent=question,
                role="assistant",
                content="a",
                model_id="fake-echo",
                prompt_tokens=10,
                completion_tokens=20,
                ttft_ms=250,
            )
            Message.objects.filter(pk__in=[question.pk, reply.pk]).update(created_at=moment)
    return today


def bar_heights(page: Page) -> list[float]:
    return page.eval_on_selector_all(
        f"{TOKENS_CHART} rect.chart-bar", "bars => bars.map(b => b.getBoundingClientRect().height)"
    )


def test_the_usage_chart_shows_a_month_per_day(month, page: Page, site, alice, screenshot):
    sign_in(page.context, site, alice)
    page.goto(site.url("/"))
    page.click("#usage-link")

    expect(page.locator(f"{TOKENS_CHART} rect.chart-bar")).to_have_count(30)
    heights = bar_heights(page)
    assert heights[0] > heights[15] > heights[-1] > 0  # 30 exchanges a month ago, 1 today
    expect(page.locator(f"{TOKENS_CHART} rect.chart-bar").first.locator("title")).to_contain_text(": 900")
    expect(page.locator("#usage-totals")).to_contain_text("465 messages, 13,950 tokens.")
    expect(page.locator("#usage-by-model")).to_contain_text("fake-echo")
    screenshot("light")

    light = page.eval_on_selector(f"{TOKENS_CHART} rect.chart-bar", "b => getComputedStyle(b).fill")
    label_light = page.eval_on_selector(f"{TOKENS_CHART} text.chart-label", "t => getComputedStyle(t).fill")
    page.emulate_media(color_scheme="dark")
    page.reload()
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    label_dark = page.eval_on_selector(f"{TOKENS_CHART} text.chart-label", "t => getComputedStyle(t).fill")
    assert label_dark != label_light and label_dark != background
    assert page.eval_on_selector(f"{TOKENS_CHART} rect.chart-bar", "b => getComputedStyle(b).fill") not in (
        background,
        "none",
    )
    assert light != "none"
    screenshot("dark")


def test_the_usage_chart_speaks_the_users_language(month, page: Page, site, alice):
    page.set_extra_http_headers({"Accept-Language": "zh-hans"})
    sign_in(page.context, site, alice)
    page.goto(site.url("/usage/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    labels = page.eval_on_selector_all(f"{TOKENS_CHART} text.chart-label", "ts => ts.map(t => t.textContent)")
    assert any("月" in label for label in labels), labels  # "12月1日": the Chinese month-day format
    expect(page.locator(f"{TOKENS_CHART} rect.chart-bar")).to_have_count(30)
