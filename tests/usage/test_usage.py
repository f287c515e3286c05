"""Usage pages: a person's own 30 days with quotas, the site-wide page for staff, the daily rollup, CSV."""

import csv
import io
import re
from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from accounts.models import UsageLimit
from conversations.models import Conversation, Message
from personas.models import ChatModel, Provider
from usage import charts, rollup
from usage.models import RolledDay, UsageDay
from usage.selectors import _TOTAL_FIELDS, Totals, UsageReport

pytestmark = pytest.mark.django_db

BAR = re.compile(r'<rect class="chart-bar"[^>]*><title>([^<]*)</title>')


def today():
    return timezone.localdate(timezone=timezone.get_default_timezone())


def at(day, hour=12):
    return timezone.make_aware(datetime.combine(day, time(hour)), timezone.get_default_timezone())


def exchange(conversation, moment, *, tokens=(10, 20), status="complete", ttft_ms=300, model_id=None, asked_by=None):
    """Save a question and its reply at `moment`, as the site would have stored them (asked by the owner if None)."""
    asked_by = asked_by or conversation.owner
    question = Message.objects.create(conversation=conversation, role="user", content="q", asked_by=asked_by)
    reply = Message.objects.create(
        conversation=conversation,
        parent=question,
        asked_by=asked_by,
        role="assistant",
        content="a",
        status=status,
        model_id=model_id or conversation.persona.model.model_id,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        ttft_ms=ttft_ms,
    )
    Message.objects.filter(pk__in=[question.pk, reply.pk]).update(created_at=moment)


@pytest.fixture
def month(alice, bob, make_persona):
    """Alice: one exchange a day for 30 days (day i: i+1 exchanges on even days); bob: one today."""
    writer = make_persona("fake-writer", name="Writer", slug="writer")
    coder = make_persona("fake-coder", name="Coder", slug="coder")
    alices = Conversation.objects.create(owner=alice, persona=writer)
    alices_code = Conversation.objects.create(owner=alice, persona=coder)
    for age in range(30):
        day = today() - timedelta(days=age)
        exchange(alices, at(day))
        if age % 2 == 0:
            exchange(alices_code, at(day, 13), tokens=(100, 200), ttft_ms=900)
    exchange(Conversation.objects.create(owner=bob, persona=writer), at(today()), tokens=(1, 1), status="error")
    return writer, coder


def test_a_user_sees_tokens_and_messages_per_day_for_30_days(client, alice, month):
    client.force_login(alice)
    response = client.get(reverse("usage:usage"))
    page = response.content.decode()
    assert response.status_code == 200
    bars = BAR.findall(page)
    assert len(bars) == 60  # two charts of 30 days
    tokens, messages = bars[:30], bars[30:]
    assert tokens[-1].endswith(": 330") and tokens[-2].endswith(": 30")  # today: 30 + 300; yesterday: 30
    assert messages[-1].endswith(": 2") and messages[-2].endswith(": 1")
    assert "45 messages, 5,400 tokens." in page  # alice's 30 × 30 + 15 × 300 tokens; bob's are not hers
    persona_table = page[page.index('id="usage-by-persona"') :]
    assert persona_table.index("Coder") < persona_table.index("Writer")  # most tokens first


def test_the_usage_page_shows_the_quota_and_what_is_left(client, alice, month):
    UsageLimit.objects.create(user=alice, daily_tokens=1000)
    client.force_login(alice)
    quota = client.get(reverse("usage:usage")).content.decode()
    quota = quota[quota.index('id="usage-quota"') :]
    assert "of 1,000 used today" in quota


def test_the_usage_page_needs_a_sign_in_and_renders_for_htmx(client, alice):
    assert client.get(reverse("usage:usage")).status_code == 302
    client.force_login(alice)
    fragment = client.get(reverse("usage:usage"), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="usage-page"' in fragment and "<html" not in fragment


def test_past_days_are_rolled_up_once_and_give_the_same_figures(alice, month):
    first, last = today() - timedelta(days=29), today()
    live = {day: rollup.day_rows(day) for day in rollup.days_between(first, last)}
    report = UsageReport(first=first, last=last)
    assert RolledDay.objects.count() >= 28 and not RolledDay.objects.filter(day=today()).exists()
    assert UsageReport(first=first, last=last).by("day") == report.by("day")  # nothing rolled twice
    for day, rows in live.items():
        expected = Totals()
        for row in rows:
            expected.add(row)
        assert report.by("day").get((day,), Totals()) == expected
    assert UsageDay.objects.filter(day=today()).count() == 0  # today stays live


def test_the_rollup_command_rolls_every_finished_day(alice, month, capsys):
    from django.core.management import call_command

    call_command("usage_rollup")
    assert RolledDay.objects.filter(day=today() - timedelta(days=29)).exists()
    assert f"Rolled up {RolledDay.objects.count()} day(s)." in capsys.readouterr().out


def test_only_staff_see_the_site_usage(client, alice, admin_client, month):
    client.force_login(alice)
    assert client.get(reverse("usage:usage-site")).status_code == 302
    assert admin_client.get(reverse("usage:usage-site")).status_code == 200


def test_the_site_page_shows_top_users_groups_models_providers(admin_client, alice, bob, month):
    Group.objects.create(name="Teachers").user_set.add(alice)
    page = admin_client.get(reverse("usage:usage-site")).content.decode()
    assert "2 active users" in page
    top = page[page.index('id="usage-top-users"') : page.index('id="usage-by-group"')]
    assert top.index("alice") < top.index("bob")
    groups = page[page.index('id="usage-by-group"') : page.index('id="usage-by-model"')]
    assert "Teachers" in groups and "(no group)" in groups
    models = page[page.index('id="usage-by-model"') : page.index('id="usage-by-provider"')]
    coder = models[models.index("fake-coder") :]
    assert "905 ms" in coder.split("</tr>")[0]  # median TTFT: the middle of the 900-909 ms bucket
    writer = models[models.index("fake-writer") :].split("</tr>")[0]
    assert "3.2 %" in writer  # bob's 1 error in 31 replies
    providers = page[page.index('id="usage-by-provider"') :]
    assert "Fake upstream" in providers and "2.2 %" in providers  # 1 error in 31 + 15 replies


def test_the_site_page_filters_by_date_and_refuses_a_bad_range(admin_client, month):
    day = today() - timedelta(days=1)
    page = admin_client.get(reverse("usage:usage-site"), {"start": day, "end": day}).content.decode()
    assert "1 active users; 1 messages, 1 replies (0 errors), 30 tokens." in page
    bad = admin_client.get(reverse("usage:usage-site"), {"start": today(), "end": today() - timedelta(days=3)})
    assert bad.status_code == 400 and "The first day comes after the last." in bad.content.decode()
    too_long = admin_client.get(reverse("usage:usage-site"), {"start": today() - timedelta(days=400)})
    assert too_long.status_code == 400


def test_the_site_usage_exports_as_csv(admin_client, alice, month):
    response = admin_client.get(reverse("usage:usage-site"), {"format": "csv", "start": today() - timedelta(days=1)})
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {(row["day"], row["user"], row["persona"], row["model"]) for row in rows} == {
        (str(today() - timedelta(days=1)), "alice", "Writer", "fake-writer"),
        (str(today()), "alice", "Writer", "fake-writer"),
        (str(today()), "alice", "Coder", "fake-coder"),
        (str(today()), "bob", "Writer", "fake-writer"),
    }
    assert sum(int(row["completion_tokens"]) for row in rows) == 20 + 20 + 200 + 1


def test_an_im_groups_messages_count_for_the_members_who_sent_them_live_rolled_up_and_in_the_csv(
    admin_client, client, alice, bob, django_user_model, make_persona
):
    group_account = django_user_model.objects.create_user("feishu-group-1")  # owns the group chat (bots)
    group_chat = Conversation.objects.create(owner=group_account, persona=make_persona("fake-writer"))
    earlier = today() - timedelta(days=2)
    for day in (earlier, today()):
        exchange(group_chat, at(day), asked_by=alice)
        exchange(group_chat, at(day, 13), tokens=(1, 2), asked_by=bob)

    assert rollup.day_rows(today(), user_id=group_account.pk) == []
    rollup.usage_rollup_day(day=earlier)
    rolled = {(row.user_id, row.messages, row.prompt_tokens + row.completion_tokens) for row in UsageDay.objects.all()}
    assert rolled == {(alice.pk, 1, 30), (bob.pk, 1, 3)}
    client.force_login(alice)
    assert "2 messages, 60 tokens." in client.get(reverse("usage:usage")).content.decode()
    response = admin_client.get(reverse("usage:usage-site"), {"format": "csv", "start": earlier})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted((row["user"], row["messages"]) for row in rows) == [("alice", "1")] * 2 + [("bob", "1")] * 2


def test_a_chat_switched_to_another_providers_model_counts_for_that_model_and_provider(alice, make_persona):
    writer = make_persona("fake-writer", name="Writer", slug="writer")
    other_provider = Provider.objects.create(name="Other", base_url="http://127.0.0.1:9/v1")
    other = ChatModel.objects.create(provider=other_provider, model_id="other-model", enabled=True)
    chat = Conversation.objects.create(owner=alice, persona=writer, chat_model=other)
    exchange(chat, at(today()), model_id="other-model")

    rows = rollup.day_rows(today(), user_id=alice.pk)

    assert [(row["provider_id"], row["model_id"], row["messages"], row["replies"]) for row in rows] == [
        (other_provider.pk, "other-model", 1, 1)
    ]


def test_names_in_the_csv_never_run_as_spreadsheet_formulas(admin_client, alice, month):
    alice.username = '=HYPERLINK("http://evil.example")'
    alice.save()
    response = admin_client.get(reverse("usage:usage-site"), {"format": "csv", "start": today() - timedelta(days=1)})
    users = {row["user"] for row in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))}
    assert '\'=HYPERLINK("http://evil.example")' in users
    assert not any(user.startswith(("=", "+", "-", "@")) for user in users)


def test_the_site_page_needs_the_same_queries_however_many_days_are_rolled_up(
    admin_client, month, django_assert_max_num_queries
):
    admin_client.get(reverse("usage:usage-site"))  # rolls up the past days
    with django_assert_max_num_queries(20):
        admin_client.get(reverse("usage:usage-site"))


def test_ttft_buckets_are_10_ms_below_10_s_then_1_s():
    assert [rollup.ttft_bucket(ms) for ms in (0, 9, 10, 9_999, 10_000, 10_999, 11_000)] == [
        0,
        0,
        1,
        999,
        1000,
        1000,
        1001,
    ]
    assert rollup.ttft_bucket_middle_ms(rollup.ttft_bucket(905)) == 905
    assert rollup.ttft_bucket_middle_ms(rollup.ttft_bucket(12_345)) == 12_500


def test_totals_sum_the_rollup_columns_in_order():
    assert tuple(_TOTAL_FIELDS) == rollup.SUM_FIELDS


def test_chart_gridlines_are_round_and_cover_the_largest_bar():
    assert [charts.nice_step(m) for m in (0, 3, 40, 41, 999, 12_345)] == [1, 1, 10, 20, 500, 5000]
    chart = charts.bar_chart(title="t", days=[today() - timedelta(days=1), today()], values=[50, 130])
    assert [line.text for line in chart.gridlines] == ["0", "50", "100", "150"]
    assert float(chart.bars[1].height) < charts.HEIGHT - charts.TOP - charts.BOTTOM and chart.bars[0].value == "50"
    assert [label.anchor for label in chart.dates] == ["end"]  # the last day's date ends at the edge
