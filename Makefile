# The chat site's entry points. Only python3 is needed: the first run builds .venv.
#
#   make run    serve the site on http://$(HOST):$(PORT)/ (seeds a provider from OPENAI_* variables)
#   make demo   serve it on the fake OpenAI server, offline, with its own database (var/demo)
#   make test   the whole test suite (PYTEST_ARGS="-k consumer -x" passes options through)
#
# Recipes are POSIX sh; GNU make is assumed.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_UPSTREAM_PORT ?= 9999
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
# settings.py reads CHAT_VAR_DIR (default var/): the database and the secret key live there.
VAR_DIR := $(if $(CHAT_VAR_DIR),$(CHAT_VAR_DIR),var)
DEMO_VAR_DIR := $(CURDIR)/var/demo

.PHONY: help run demo test

help:
	@echo "make run   serve the site (set OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL to seed a provider)"
	@echo "make demo  serve the site on a fake OpenAI server (offline; database in var/demo)"
	@echo "make test  run the whole test suite (PYTEST_ARGS=... passes options to pytest)"

run: $(VENV)/.installed-runtime $(VAR_DIR)/secret_key
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed
	exec $(VENV)/bin/daphne -b $(HOST) -p $(PORT) chatsite.asgi:application

# One shell for the whole recipe, so the trap stops the fake server however daphne ends
# (background jobs of a non-interactive shell ignore Ctrl-C, hence the explicit kill).
demo: $(VENV)/.installed-test $(DEMO_VAR_DIR)/secret_key
	@set -e; \
	unset DATABASE_URL REDIS_URL; \
	export CHAT_VAR_DIR="$(DEMO_VAR_DIR)" OPENAI_API_KEY=demo \
		OPENAI_BASE_URL="http://127.0.0.1:$(DEMO_UPSTREAM_PORT)/v1" OPENAI_MODEL=fake-echo \
		OPENAI_MODEL_LABEL="Offline demo (fake server)"; \
	$(PY) manage.py migrate --noinput; \
	$(PY) manage.py collectstatic --noinput --verbosity 0; \
	$(PY) manage.py seed; \
	$(PY) -m tests.fakes.openai_server --port $(DEMO_UPSTREAM_PORT) & upstream=$$!; \
	trap 'kill $$upstream 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	echo "Demo on http://$(HOST):$(PORT)/ (fake upstream on port $(DEMO_UPSTREAM_PORT)); Ctrl-C stops both."; \
	$(VENV)/bin/daphne -b $(HOST) -p $(PORT) chatsite.asgi:application

test: $(VENV)/.installed-test $(VAR_DIR)/secret_key
	$(PY) -m pytest $(PYTEST_ARGS)

$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create $(VENV): on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }

# Stamps: pip runs again only when a requirements file changes.
$(VENV)/.installed-runtime: requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-test.txt
	touch $@

# A random key, readable by its owner only; never overwritten (it encrypts provider API keys).
%/secret_key:
	mkdir -p $(@D)
	umask 077; $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@.tmp
	chmod 600 $@.tmp
	mv $@.tmp $@
