"""What Django's error reports (the debug 500 page, error e-mails) may show of a request and its frames."""

from django.views.debug import SafeExceptionReporterFilter


class SensitiveAlwaysHiddenFilter(SafeExceptionReporterFilter):
    """Hide variables and POST fields marked sensitive in every report, in DEBUG too.

    Django's filter honours `sensitive_variables` and
    `sensitive_post_parameters` only when DEBUG is off; a provider API key on
    a developer's debug page is still a leaked key. Everything not marked
    stays visible, so debugging loses nothing else.
    """

    def is_active(self, request) -> bool:
        return True
