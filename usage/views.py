"""Usage pages: each person's own (last 30 days, quotas), and the site-wide one for staff (any range, CSV)."""

import csv
from collections.abc import Iterator
from datetime import timedelta

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from conversations.quotas import quota_status
from conversations.views.shortcuts import AuthenticatedHttpRequest, render_page
from personas.models import Persona, Provider
from usage import charts
from usage.forms import DEFAULT_DAYS, DateRangeForm
from usage.selectors import Totals, UsageReport, project, sum_totals, user_groups

TOP_USERS = 20
CSV_SUMS = ["messages", "replies", "errors", "prompt_tokens", "completion_tokens"]
# The columns of the CSV export: names, not ids (ids change across sites; names are what people read).
CSV_COLUMNS = ["day", "user", "persona", "provider", "model", *CSV_SUMS]


def _charts(report: UsageReport, per_day: dict[tuple, Totals]) -> list[charts.BarChart]:
    days = report.days()
    empty = Totals()
    return [
        charts.bar_chart(
            title=_("Tokens per day"), days=days, values=[per_day.get((day,), empty).tokens for day in days]
        ),
        charts.bar_chart(
            title=_("Messages per day"), days=days, values=[per_day.get((day,), empty).messages for day in days]
        ),
    ]


def _named(totals: dict[tuple, Totals], names: dict, unknown: str) -> list[tuple[str, Totals]]:
    """Return (name, totals) by tokens, most first; keys are 1-tuples of ids looked up in `names`."""
    lines = [(names.get(key[0]) or unknown, value) for key, value in totals.items()]
    return sorted(lines, key=lambda line: (-line[1].tokens, -line[1].messages, line[0]))


def _persona_names(ids) -> dict:
    return dict(Persona.objects.filter(pk__in=[i for i in ids if i]).values_list("pk", "name"))


def _by_model(by_model: dict[tuple, Totals]) -> list[tuple[str, Totals]]:
    """Return (model id, totals) by tokens, most first; "" is the model of a question whose persona is gone."""
    return sorted(((key[0], value) for key, value in by_model.items()), key=lambda line: -line[1].tokens)


@login_required
@require_GET
def usage_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Show the user's own usage: tokens and messages per day over the last 30 days, by persona and model, quotas."""
    today = timezone.localdate(timezone=timezone.get_default_timezone())
    report = UsageReport(first=today - timedelta(days=DEFAULT_DAYS - 1), last=today, user_id=request.user.pk)
    per_day = report.by("day")
    combinations = report.by("persona_id", "model_id")
    by_persona = project(combinations, 0)
    context = {
        "report": report,
        "total": sum_totals(per_day.values()),
        "charts": _charts(report, per_day),
        "by_persona": _named(by_persona, _persona_names(key[0] for key in by_persona), _("Deleted persona")),
        "by_model": _by_model(project(combinations, 1)),
        "quota": quota_status(user=request.user),
    }
    return render_page(request, "usage/usage.html", "usage/partials/usage.html", context)


@staff_member_required
@require_GET
def usage_site(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Show everyone's usage over a range of days (`start`, `end`, default the last 30) for staff; `?format=csv`.

    Totals, per-day charts, the top users, groups, models (error rate,
    median time to first token), providers (error rate) and personas. A bad
    range shows the form with its error and no figures (400).
    """
    today = timezone.localdate(timezone=timezone.get_default_timezone())
    form = DateRangeForm(request.GET, today=today)
    if not form.is_valid():
        return render(request, "usage/site.html", {"form": form}, status=400)
    data = form.cleaned_data
    report = UsageReport(first=data["start"], last=data["end"])
    by_user = report.by("user_id")
    users = dict(get_user_model().objects.filter(pk__in=[key[0] for key in by_user]).values_list("pk", "username"))
    memberships = user_groups(user_ids=list(users))
    groups: dict[str, Totals] = {}
    for (user_id,), totals in by_user.items():
        for name in memberships.get(user_id, [_("(no group)")]):
            groups.setdefault(name, Totals()).add(vars(totals))
    combinations = report.by("persona_id", "provider_id", "model_id")
    by_persona, by_provider = project(combinations, 0), project(combinations, 1)
    personas = _persona_names(key[0] for key in by_persona)
    providers = dict(Provider.objects.filter(pk__in=[k[0] for k in by_provider if k[0]]).values_list("pk", "name"))
    if request.GET.get("format") == "csv":
        return _csv_response(report, users=users, personas=personas, providers=providers)
    medians = report.ttft_median_ms()
    per_day = report.by("day")
    context = {
        "form": form,
        "start": data["start"],
        "end": data["end"],
        "total": sum_totals(per_day.values()),
        "charts": _charts(report, per_day),
        "top_users": _named(by_user, users, _("Deleted user"))[:TOP_USERS],
        "user_count": len(by_user),
        "by_group": sorted(groups.items(), key=lambda line: (-line[1].tokens, line[0])),
        "by_model": [
            (model_id, totals, medians.get(model_id)) for model_id, totals in _by_model(project(combinations, 2))
        ],
        "by_provider": _named(by_provider, providers, _("Unknown provider")),
        "by_persona": _named(by_persona, personas, _("Deleted persona")),
    }
    return render(request, "usage/site.html", context)


def _cell(text: str) -> str:
    """Return a name for a CSV cell that a spreadsheet shows as text, never runs as a formula.

    Names are user-controlled (usernames, users' own personas); a cell starting
    with = + - @ or a tab/CR is prefixed with an apostrophe (OWASP, "CSV Injection").
    """
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    """A file-like object whose write returns the line, for csv.writer into a streamed response."""

    def write(self, value: str) -> str:
        return value


def _csv_response(
    report: UsageReport, *, users: dict[int, str], personas: dict[int, str], providers: dict[int, str]
) -> StreamingHttpResponse:
    """Stream the report's rows as CSV: one line per day, user, persona, provider and model, with names."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for row in report.rows():
            yield writer.writerow(
                [
                    row["day"].isoformat(),
                    _cell(users.get(row["user_id"], "")),
                    _cell(personas.get(row["persona_id"], "")),
                    _cell(providers.get(row["provider_id"], "")),
                    _cell(row["model_id"]),
                    *(row[name] for name in CSV_SUMS),
                ]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{report.first}-{report.last}.csv"'
    return response
