"""Usage limits: resolution (user row > most generous group > site default), usage counting, the check, messages."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import UsageLimit
from accounts.selectors import Limits, user_limits, users_limits
from conversations import services
from conversations.models import Conversation, Message
from conversations.quotas import QuotaExceeded, quota_check, quota_reads, quota_status
from conversations.selectors import user_usage, users_usage

pytestmark = pytest.mark.django_db

NOW = datetime(2024, 5, 1, 18, 48, 0, tzinfo=UTC)
MIDNIGHT = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.TIME_ZONE = "UTC"
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 20
    settings.CHAT_DEFAULT_CONCURRENT_REPLIES = 2
    settings.CHAT_DEFAULT_DAILY_TOKENS = 0
    settings.CHAT_STALE_AFTER_S = 45


def _reply(user, *, at: datetime, status=Message.Status.COMPLETE, prompt=None, completion=None, heartbeat_at=None):
    """Save an assistant reply `user` asked for, started at `at` (and its question, just before), in their chat."""
    conversation = Conversation.objects.filter(owner=user).first() or Conversation.objects.create(owner=user)
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Hi", asked_by=user)
    reply = Message.objects.create(
        conversation=conversation,
        parent=question,
        asked_by=user,
        role=Message.Role.ASSISTANT,
        status=status,
        prompt_tokens=prompt,
        completion_tokens=completion,
        heartbeat_at=heartbeat_at,
    )
    Message.objects.filter(pk=question.pk).update(created_at=at - timedelta(milliseconds=1))
    Message.objects.filter(pk=reply.pk).update(created_at=at)
    if prompt or completion:  # What services.reply_finish records as it stores a reply.
        services.usage_add(user_id=user.pk, started_at=at, tokens=(prompt or 0) + (completion or 0))
    return reply


def _group(name: str, user, **limits) -> Group:
    group = Group.objects.create(name=name)
    group.user_set.add(user)
    UsageLimit.objects.create(group=group, **limits)
    return group


# Resolution


def test_limits_default_to_the_site_settings(alice, settings):
    settings.CHAT_DEFAULT_DAILY_TOKENS = 50_000

    assert user_limits(user=alice) == Limits(sends_per_minute=20, concurrent_replies=2, daily_tokens=50_000)


def test_a_default_of_zero_means_no_limit(alice, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 0

    assert user_limits(user=alice) == Limits(sends_per_minute=None, concurrent_replies=2, daily_tokens=None)


def test_the_most_generous_group_wins_each_limit_on_its_own(alice):
    _group("students", alice, sends_per_minute=10, daily_tokens=20_000)
    _group("teachers", alice, sends_per_minute=5, daily_tokens=80_000)

    assert user_limits(user=alice) == Limits(sends_per_minute=10, concurrent_replies=2, daily_tokens=80_000)


def test_a_group_without_a_limit_beats_any_number(alice, settings):
    settings.CHAT_DEFAULT_DAILY_TOKENS = 10_000
    _group("students", alice, daily_tokens=20_000)
    _group("staff", alice, daily_tokens=0)

    assert user_limits(user=alice).daily_tokens is None


def test_the_users_own_row_wins_over_groups_and_unset_fields_fall_through(alice):
    _group("teachers", alice, sends_per_minute=60, concurrent_replies=4)
    UsageLimit.objects.create(user=alice, sends_per_minute=3, daily_tokens=1_000)

    assert user_limits(user=alice) == Limits(sends_per_minute=3, concurrent_replies=4, daily_tokens=1_000)


def test_a_users_own_zero_lifts_a_groups_limit(alice):
    _group("students", alice, daily_tokens=20_000)
    UsageLimit.objects.create(user=alice, daily_tokens=0)

    assert user_limits(user=alice).daily_tokens is None


def test_other_users_rows_and_groups_do_not_apply(alice, bob):
    UsageLimit.objects.create(user=bob, sends_per_minute=1)
    _group("bobs", bob, concurrent_replies=9)
    UsageLimit.objects.create(group=Group.objects.create(name="empty"), daily_tokens=5)

    assert user_limits(user=alice) == Limits(sends_per_minute=20, concurrent_replies=2, daily_tokens=None)


def test_limits_are_resolved_in_one_query(alice, django_assert_num_queries):
    _group("a", alice, sends_per_minute=10)
    _group("b", alice, sends_per_minute=12)
    UsageLimit.objects.create(user=alice, daily_tokens=7)

    with django_assert_num_queries(1):
        user_limits(user=alice)


def test_many_users_limits_and_usage_are_read_in_one_query_each_as_one_users_are(
    alice, bob, persona, django_user_model, django_assert_num_queries
):
    carol = django_user_model.objects.create_user("carol")
    _group("teachers", alice, sends_per_minute=50)
    UsageLimit.objects.create(user=bob, sends_per_minute=1, daily_tokens=0)
    chat = services.conversation_create(owner=bob, persona=persona)
    services.reply_request(user=bob, public_id=chat.public_id, action="send", text="Hi")
    ids = [alice.pk, bob.pk, carol.pk]
    now = timezone.now()
    with django_assert_num_queries(1):
        limits = users_limits(user_ids=ids)
    with django_assert_num_queries(1):
        usage = users_usage(user_ids=ids, now=now)
    for user in (alice, bob, carol):
        assert limits[user.pk] == user_limits(user=user)
        assert usage[user.pk] == user_usage(user=user, now=now)
    assert limits[alice.pk].sends_per_minute == 50 and limits[bob.pk].sends_per_minute == 1
    assert (usage[bob.pk].sends_last_minute, usage[alice.pk].sends_last_minute) == (1, 0)


def test_a_row_for_both_a_user_and_a_group_is_refused(alice):
    limit = UsageLimit(user=alice, group=Group.objects.create(name="g"), sends_per_minute=1)

    with pytest.raises(ValidationError, match="either a user or a group"):
        limit.full_clean()


# Usage


def test_sends_count_the_users_replies_started_in_the_last_minute(alice, bob):
    _reply(alice, at=NOW - timedelta(seconds=61))
    _reply(alice, at=NOW - timedelta(seconds=30))
    _reply(alice, at=NOW - timedelta(seconds=1))
    _reply(bob, at=NOW - timedelta(seconds=1))

    assert user_usage(user=alice, now=NOW).sends_last_minute == 2


def test_streaming_counts_only_live_replies_when_given_a_cut_off(alice, bob):
    cut_off = NOW - timedelta(seconds=45)
    _reply(alice, at=NOW - timedelta(hours=1), status=Message.Status.STREAMING, heartbeat_at=NOW - timedelta(seconds=5))
    _reply(alice, at=NOW - timedelta(hours=1), status=Message.Status.STREAMING, heartbeat_at=NOW - timedelta(minutes=5))
    _reply(alice, at=NOW - timedelta(minutes=5), status=Message.Status.STREAMING)  # Never beat, started long ago.
    _reply(alice, at=NOW - timedelta(seconds=2), status=Message.Status.STREAMING)  # Never beat yet, just started.
    _reply(alice, at=NOW - timedelta(seconds=2), status=Message.Status.COMPLETE)
    _reply(bob, at=NOW, status=Message.Status.STREAMING, heartbeat_at=NOW)

    assert user_usage(user=alice, now=NOW, stale_before=cut_off).replies_streaming == 2
    assert user_usage(user=alice, now=NOW).replies_streaming == 4


def test_tokens_today_sum_the_users_replies_since_midnight(alice, bob):
    _reply(alice, at=NOW - timedelta(hours=2), prompt=1_000, completion=400)
    _reply(alice, at=MIDNIGHT, prompt=100, completion=None)
    _reply(alice, at=NOW - timedelta(minutes=1), status=Message.Status.ERROR)  # The upstream reported nothing.
    _reply(alice, at=MIDNIGHT - timedelta(seconds=1), prompt=9_000, completion=9_000)  # Yesterday.
    _reply(bob, at=NOW - timedelta(hours=1), prompt=5_000, completion=5_000)

    assert user_usage(user=alice, now=NOW).tokens_today == 1_500


def test_tokens_today_start_at_midnight_in_the_site_time_zone(alice, settings):
    settings.TIME_ZONE = "Asia/Shanghai"  # UTC+8: the local day of 03:00 UTC on May 2 began at 16:00 UTC on May 1.
    now = datetime(2024, 5, 2, 3, 0, tzinfo=UTC)
    _reply(alice, at=datetime(2024, 5, 1, 17, 0, tzinfo=UTC), prompt=10, completion=20)
    _reply(alice, at=datetime(2024, 5, 1, 15, 0, tzinfo=UTC), prompt=1_000, completion=1_000)

    usage = user_usage(user=alice, now=now)

    assert usage.tokens_today == 30
    assert usage.day_end == datetime(2024, 5, 2, 16, 0, tzinfo=UTC)


def test_usage_is_counted_in_one_query_that_never_reads_the_history(alice, django_assert_num_queries):
    for day in range(30):
        _reply(alice, at=NOW - timedelta(days=day), prompt=1, completion=1)

    with django_assert_num_queries(1) as queries:
        usage = user_usage(user=alice, now=NOW, stale_before=NOW)

    assert usage.tokens_today == 2
    assert not any("SUM(" in query["sql"].upper() for query in queries.captured_queries)


def test_replies_count_for_who_asked_them_not_for_the_conversations_owner(alice, bob):
    group_chat = Conversation.objects.create(owner=bob)  # An IM group's own account, say; alice is a member.
    question = Message.objects.create(conversation=group_chat, role=Message.Role.USER, content="Hi", asked_by=alice)
    reply = Message.objects.create(
        conversation=group_chat,
        parent=question,
        asked_by=alice,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        heartbeat_at=NOW,
    )
    Message.objects.filter(pk=reply.pk).update(created_at=NOW - timedelta(seconds=5))

    alices, bobs = user_usage(user=alice, now=NOW, stale_before=NOW), user_usage(user=bob, now=NOW, stale_before=NOW)

    assert (alices.sends_last_minute, alices.replies_streaming) == (1, 1)
    assert (bobs.sends_last_minute, bobs.replies_streaming) == (0, 0)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's query plan")
def test_usage_reads_the_users_messages_only_through_the_askers_indexes(alice):
    """Neither count may read the user's whole history: each subquery on messages searches an asker's index."""
    _reply(alice, at=NOW)
    with connection.cursor() as cursor:
        with CaptureQueriesContext(connection) as queries:
            user_usage(user=alice, now=NOW, stale_before=NOW)
        cursor.execute("EXPLAIN QUERY PLAN " + queries.captured_queries[0]["sql"])
        plan = [row[-1] for row in cursor.fetchall()]

    messages = [step for step in plan if "message" in step]
    assert len(messages) == 2, plan
    assert "message_asked_by_created (asked_by_id=? AND created_at>?)" in messages[0]
    assert "message_asked_by_streaming (asked_by_id=?)" in messages[1]


# The check


def test_a_user_under_every_limit_may_send(alice, settings):
    settings.CHAT_DEFAULT_DAILY_TOKENS = 50_000
    _reply(alice, at=NOW - timedelta(seconds=10), prompt=30_000, completion=7_600)

    status = quota_check(user=alice, now=NOW)

    assert (status.sends_left, status.replies_left, status.tokens_left) == (19, 2, 12_400)


def test_the_check_takes_two_queries(alice, django_assert_num_queries):
    _reply(alice, at=NOW, prompt=1, completion=1)

    with django_assert_num_queries(2):
        quota_check(user=alice, now=NOW)


def test_the_daily_quota_refuses_with_the_time_until_midnight(alice):
    UsageLimit.objects.create(user=alice, daily_tokens=50_000)
    _reply(alice, at=NOW - timedelta(hours=3), prompt=40_000, completion=10_100)

    with pytest.raises(QuotaExceeded) as caught:
        quota_check(user=alice, now=NOW)

    assert caught.value.messages == [
        "You have used today’s 50,000 tokens; the quota resets at midnight (in 5 h 12 min)."
    ]
    assert (caught.value.limit, caught.value.retry_after_s) == ("daily_tokens", 5 * 3600 + 12 * 60)


def test_yesterdays_tokens_do_not_count_against_today(alice):
    UsageLimit.objects.create(user=alice, daily_tokens=50_000)
    _reply(alice, at=NOW - timedelta(days=1), prompt=40_000, completion=40_000)

    assert quota_check(user=alice, now=NOW).tokens_left == 50_000


def test_the_minute_limit_refuses_until_the_oldest_send_is_a_minute_old(alice, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 3
    for seconds_ago in (25, 20, 10):
        _reply(alice, at=NOW - timedelta(seconds=seconds_ago))

    with pytest.raises(QuotaExceeded) as caught:
        quota_check(user=alice, now=NOW)

    assert caught.value.messages == ["You have sent 3 messages in the last minute; wait 35 s."]
    assert (caught.value.limit, caught.value.retry_after_s) == ("sends_per_minute", 35)


def test_over_the_minute_limit_the_wait_lasts_until_enough_sends_age_out(alice, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 2  # Lowered after three sends.
    for seconds_ago in (25, 20, 10):
        _reply(alice, at=NOW - timedelta(seconds=seconds_ago))

    with pytest.raises(QuotaExceeded) as caught:
        quota_check(user=alice, now=NOW)

    assert caught.value.retry_after_s == 40


def test_a_refusal_for_the_minute_limit_takes_one_more_query(alice, settings, django_assert_num_queries):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    _reply(alice, at=NOW - timedelta(seconds=5))

    with django_assert_num_queries(3), pytest.raises(QuotaExceeded):
        quota_check(user=alice, now=NOW)


def test_the_concurrency_limit_refuses_while_replies_stream(alice):
    for _ in range(2):
        _reply(alice, at=NOW - timedelta(minutes=2), status=Message.Status.STREAMING, heartbeat_at=NOW)

    with pytest.raises(QuotaExceeded) as caught:
        quota_check(user=alice, now=NOW)

    assert caught.value.messages == ["2 replies are already being written; wait for one to finish or stop it."]
    assert (caught.value.limit, caught.value.retry_after_s) == ("concurrent_replies", None)


def test_a_single_reply_at_once_gets_its_own_wording(alice):
    UsageLimit.objects.create(user=alice, concurrent_replies=1)
    _reply(alice, at=NOW - timedelta(minutes=2), status=Message.Status.STREAMING, heartbeat_at=NOW)

    with pytest.raises(QuotaExceeded, match=r"A reply is already being written; wait for it to finish or stop it\."):
        quota_check(user=alice, now=NOW)


def test_replies_left_by_a_dead_worker_do_not_block(alice, settings):
    for _ in range(2):
        _reply(
            alice,
            at=NOW - timedelta(minutes=2),
            status=Message.Status.STREAMING,
            heartbeat_at=NOW - timedelta(seconds=46),
        )

    assert quota_check(user=alice, now=NOW).replies_left == 2


def test_the_tokens_quota_is_reported_before_the_other_limits(alice, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    settings.CHAT_DEFAULT_DAILY_TOKENS = 100
    _reply(alice, at=NOW - timedelta(seconds=5), status=Message.Status.STREAMING, heartbeat_at=NOW, prompt=100)

    with pytest.raises(QuotaExceeded) as caught:
        quota_check(user=alice, now=NOW)

    assert caught.value.limit == "daily_tokens"


def test_other_users_usage_never_counts(alice, bob, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    settings.CHAT_DEFAULT_CONCURRENT_REPLIES = 1
    settings.CHAT_DEFAULT_DAILY_TOKENS = 100
    _reply(bob, at=NOW - timedelta(seconds=5), status=Message.Status.STREAMING, heartbeat_at=NOW, prompt=500)
    with pytest.raises(QuotaExceeded):
        quota_check(user=bob, now=NOW)

    status = quota_check(user=alice, now=NOW)

    assert (status.sends_left, status.replies_left, status.tokens_left) == (1, 1, 100)


def test_a_refusal_reads_as_a_validation_error(alice, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    _reply(alice, at=NOW - timedelta(seconds=59))

    with pytest.raises(ValidationError) as caught:
        quota_check(user=alice, now=NOW)

    assert " ".join(caught.value.messages) == "You have sent 1 message in the last minute; wait 1 s."


def test_status_never_shows_negative_tokens_left_and_none_without_a_limit(alice, settings):
    settings.CHAT_DEFAULT_DAILY_TOKENS = 100
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 0
    _reply(alice, at=NOW - timedelta(hours=1), prompt=150, completion=50)

    status = quota_status(user=alice, now=NOW)

    assert (status.tokens_left, status.sends_left) == (0, None)
    assert status.tokens_reset_at == datetime(2024, 5, 2, tzinfo=UTC)


def _wait_for_a_blocked_query(timeout_s: float = 10) -> None:
    """Return once another PostgreSQL session waits for a lock; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
        time.sleep(0.01)
    pytest.fail("The second check did not wait for the first send's transaction.")


def _while_a_send_of_alice_is_saved(alice, conversation, other):
    """Return what `other()` returns, run on a thread while a send of alice's holds her row lock, then commits."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        with transaction.atomic():
            quota_check(user=alice, lock=True)
            second = pool.submit(other)
            _wait_for_a_blocked_query()
            question = Message.objects.create(
                conversation=conversation, role=Message.Role.USER, content="Hi", asked_by=alice
            )
            Message.objects.create(
                conversation=conversation, parent=question, role=Message.Role.ASSISTANT, asked_by=alice
            )
        return second.result(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_two_sends_at_once_are_checked_one_after_the_other(alice, settings):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's IMMEDIATE transactions serialize writers by themselves; the row lock is PostgreSQL's.")
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    conversation = Conversation.objects.create(owner=alice)

    def second_send() -> str:
        try:
            with transaction.atomic():
                quota_check(user=alice, lock=True)
            return "allowed"
        except QuotaExceeded:
            return "refused"
        finally:
            connection.close()

    assert _while_a_send_of_alice_is_saved(alice, conversation, second_send) == "refused"


@pytest.mark.django_db(transaction=True)
def test_a_batchs_quota_reads_wait_for_a_send_of_one_of_its_users(alice, bob, settings):
    """The reads a batch of sends does ahead (`quota_reads`) lock its users' rows first, as one send's check does."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's IMMEDIATE transactions serialize writers by themselves; the row lock is PostgreSQL's.")
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 1
    conversation = Conversation.objects.create(owner=alice)

    def batch() -> dict[str, str]:
        outcomes = {}
        try:
            with transaction.atomic():
                limits, usage = quota_reads(user_ids=[bob.pk, alice.pk], now=timezone.now(), lock=True)
                for user in (alice, bob):
                    try:
                        quota_check(user=user, lock=True, limits=limits[user.pk], usage=usage[user.pk])
                        outcomes[user.username] = "allowed"
                    except QuotaExceeded:
                        outcomes[user.username] = "refused"
            return outcomes
        finally:
            connection.close()

    assert _while_a_send_of_alice_is_saved(alice, conversation, batch) == {"alice": "refused", "bob": "allowed"}


# The partial


def _render(user, *, oob=False) -> str:
    return render_to_string(
        "conversations/partials/quota_status.html", {"quota": quota_status(user=user, now=NOW), "oob": oob}
    )


def test_partial_shows_the_tokens_left_today(alice):
    UsageLimit.objects.create(user=alice, daily_tokens=50_000)
    _reply(alice, at=NOW - timedelta(hours=1), prompt=30_000, completion=7_600)

    html = _render(alice)

    assert 'id="quota-status"' in html
    assert "12,400 of 50,000 tokens left today" in html
    assert "messages left this minute" not in html  # 19 of 20 left: far from the limit.
    assert "hx-swap-oob" not in html


def test_partial_shows_the_messages_left_this_minute_only_when_few_are(alice, settings):
    settings.CHAT_DEFAULT_SENDS_PER_MINUTE = 7
    _reply(alice, at=NOW - timedelta(seconds=30))
    assert "messages left this minute" not in _render(alice)

    _reply(alice, at=NOW - timedelta(seconds=20))
    html = _render(alice)

    assert "5 of 7 messages left this minute" in html
    assert "tokens left today" not in html


def test_partial_marks_a_used_up_limit(alice):
    UsageLimit.objects.create(user=alice, daily_tokens=10)
    _reply(alice, at=NOW - timedelta(hours=1), prompt=20)

    assert 'class="quota-tokens quota-exhausted">0 of 10 tokens left today' in _render(alice)


def test_partial_is_empty_without_limits_to_show_and_swaps_out_of_band_when_asked(alice):
    html = _render(alice, oob=True).strip()

    assert html == '<p id="quota-status" class="quota-status muted" hx-swap-oob="true"></p>'


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (datetime(2024, 5, 1, 23, 59, 25, tzinfo=UTC), "35 s"),
        (datetime(2024, 5, 1, 23, 56, 1, tzinfo=UTC), "4 min"),
        (datetime(2024, 5, 1, 22, 0, tzinfo=UTC), "2 h"),
    ],
)
def test_the_wait_until_midnight_reads_in_the_largest_fitting_units(alice, now, wait):
    UsageLimit.objects.create(user=alice, daily_tokens=1)
    _reply(alice, at=now - timedelta(seconds=1), prompt=1)

    with pytest.raises(QuotaExceeded) as caught:
        quota_check(user=alice, now=now)

    assert caught.value.message == f"You have used today’s 1 token; the quota resets at midnight (in {wait})."
