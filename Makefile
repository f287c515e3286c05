# The chat site's entry points. Only python3 is needed: the first run builds .venv.
#
#   make run    serve the site on http://$(HOST):$(PORT)/ (seeds a provider from OPENAI_* variables)
#   make demo   serve it on the fake OpenAI server, offline, with its own database (var/demo)
#   make test   the whole test suite (PYTEST_ARGS="-k consumer -x" passes options through)
#   make lint   ruff check, ruff format --check, mypy, and makemigrations --check
#   make lock   recompile requirements*.txt (the hashed locks) from requirements*.in
#   make messages         extract new strings into locale/*/LC_MESSAGES/*.po (needs GNU gettext), then compile
#   make compilemessages  compile the .po catalogs into the committed .mo files (pure Python: Babel)
#   make grpc   regenerate api/rpc/chat_pb2*.py from api/rpc/chat.proto (grpcio-tools)
#
# run installs requirements.txt; test, demo and lint install requirements-test.txt. Both are
# locks: every package, transitive ones included, pinned with hashes (pip checks them).
#
# Recipes are POSIX sh; GNU make is assumed.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_UPSTREAM_PORT ?= 9999
PYTEST_ARGS ?=
# make lock: UPGRADE=1 moves every package to the newest release its requirements*.in range allows;
# UPGRADE_PACKAGE="openai django" moves only those. Without either, the locked versions stay.
UPGRADE ?=
UPGRADE_PACKAGE ?=
UV_VERSION ?= 0.13.9
LOCK_VENV ?= .venv-lock

PY := $(VENV)/bin/python
# settings.py reads CHAT_VAR_DIR (default var/): the database and the secret key live there.
VAR_DIR := $(if $(CHAT_VAR_DIR),$(CHAT_VAR_DIR),var)
DEMO_VAR_DIR := $(CURDIR)/var/demo

.PHONY: help run demo test lint lock messages compilemessages grpc

help:
	@echo "make run   serve the site (set OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL to seed a provider)"
	@echo "make demo  serve the site on a fake OpenAI server (offline; database in var/demo)"
	@echo "make test  run the whole test suite (PYTEST_ARGS=... passes options to pytest)"
	@echo "make lint  ruff check, ruff format --check, mypy, makemigrations --check (all run; fails if any fails)"
	@echo "make messages         extract strings into the zh_Hans and zh_Hant catalogs (needs GNU gettext), compile them"
	@echo "make compilemessages  compile locale/*/LC_MESSAGES/*.po into the .mo files the site reads (pure Python)"
	@echo "make grpc  regenerate the gRPC modules api/rpc/chat_pb2*.py from api/rpc/chat.proto"
	@echo "make lock  recompile requirements.txt and requirements-test.txt from the .in files"
	@echo "           (UPGRADE=1: newest allowed versions; UPGRADE_PACKAGE=\"openai ...\": only those)"

run: $(VENV)/.installed-runtime $(VAR_DIR)/secret_key
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py seed
	exec $(PY) -m chatsite.serve -b $(HOST) -p $(PORT) chatsite.asgi:application

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
	$(PY) -m chatsite.serve -b $(HOST) -p $(PORT) chatsite.asgi:application

test: $(VENV)/.installed-test $(VENV)/.installed-client $(VAR_DIR)/secret_key
	$(PY) -m pytest $(PYTEST_ARGS)

# The generated modules are committed (the site needs no build step); a test fails when they are stale.
grpc: $(VENV)/.installed-test
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. api/rpc/chat.proto

# Each check runs even if an earlier one failed; the exit status says whether all passed.
# The settings need a secret key: a throwaway one here, and makemigrations checks the migration
# history against an empty in-memory database, so lint writes nothing under var/.
lint: $(VENV)/.installed-test
	@status=0; \
	export DJANGO_SECRET_KEY=make-lint-not-a-secret; \
	echo "ruff check ."; $(VENV)/bin/ruff check . || status=1; \
	echo "ruff format --check ."; $(VENV)/bin/ruff format --check . || status=1; \
	echo "mypy"; $(VENV)/bin/mypy || status=1; \
	echo "manage.py makemigrations --check --dry-run"; \
	DATABASE_URL=sqlite://:memory: $(PY) manage.py makemigrations --check --dry-run || status=1; \
	exit $$status

# Translations. The compiled .mo files are committed, so `make run` needs no compiler. makemessages runs
# GNU xgettext and msgmerge (apt-get install gettext); it keeps translated entries whose string left the
# source as obsolete (#~) ones, which come back translated if the string returns. Compiling uses Babel,
# which skips fuzzy entries as msgfmt does; tests/test_translations.py fails on a missing, fuzzy or
# empty translation, and on a .mo that does not match its .po.
LOCALES := zh_Hans zh_Hant
MESSAGES_FLAGS := $(foreach l,$(LOCALES),-l $(l)) --add-location=file --no-wrap \
	--ignore=.venv --ignore=.venv-lock --ignore=var --ignore=staticfiles --ignore=tests --ignore=bench \
	--ignore=static/vendor

messages: $(VENV)/.installed-test
	DJANGO_SECRET_KEY=make-messages-not-a-secret $(PY) manage.py makemessages $(MESSAGES_FLAGS)
	DJANGO_SECRET_KEY=make-messages-not-a-secret $(PY) manage.py makemessages -d djangojs $(MESSAGES_FLAGS)
	$(MAKE) compilemessages

compilemessages: $(VENV)/.installed-test
	$(VENV)/bin/pybabel compile --statistics -d locale -D "django djangojs"

# The locks are compiled by uv (pinned, in its own venv, not the project's) for CPython 3.11 and
# later on any platform (--universal: environment markers where the dependencies differ), with
# the hashes of every file of each pinned release. The existing locks are kept as preferences,
# so only new or changed requirements move unless UPGRADE / UPGRADE_PACKAGE says otherwise.
UV := $(LOCK_VENV)/bin/uv
UV_STAMP := $(LOCK_VENV)/.installed-uv-$(UV_VERSION)
UV_FLAGS := --universal --python-version 3.11 --generate-hashes
# $(call uv_compile,IN,OUT): the lock's header names `make lock` and the uv command it ran.
uv_compile = $(UV) pip compile --quiet $(UV_FLAGS) \
	$(if $(UPGRADE),--upgrade) $(foreach p,$(UPGRADE_PACKAGE),--upgrade-package $(p)) \
	--custom-compile-command "make lock  (uv pip compile $(UV_FLAGS) $(1) -o $(2); uv $(UV_VERSION))" \
	$(1) -o $(2)

lock: $(UV_STAMP)
	$(call uv_compile,requirements.in,requirements.txt)
	$(call uv_compile,requirements-test.in,requirements-test.txt)

$(UV_STAMP):
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --disable-pip-version-check --quiet uv==$(UV_VERSION)
	touch $@

$(PY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create $(VENV): on Debian/Ubuntu, apt-get install python3-venv" >&2; exit 1; }

# Stamps: pip runs again only when a lock changes. --require-hashes (implied by the hashes in the
# locks; stated so that a lock without them fails) makes pip refuse any file whose hash is not
# in the lock and any dependency the lock does not pin, so an incomplete lock fails here rather
# than pulling in an unpinned package (which --no-deps would hide instead).
$(VENV)/.installed-runtime: requirements.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet --require-hashes -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check --quiet --require-hashes -r requirements-test.txt
	touch $@

# The terminal client (clients/terminal) is a package of its own, run by its tests as the `chat`
# command. Its dependencies are in the test lock (hash-checked); the client itself is installed
# editable, without dependencies and without fetching a build backend (setuptools is in the lock).
$(VENV)/.installed-client: clients/terminal/pyproject.toml $(VENV)/.installed-test
	$(PY) -m pip install --disable-pip-version-check --quiet --no-deps --no-build-isolation --editable ./clients/terminal
	touch $@

# A random key, readable by its owner only; never overwritten (it encrypts provider API keys).
%/secret_key:
	mkdir -p $(@D)
	umask 077; $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@.tmp
	chmod 600 $@.tmp
	mv $@.tmp $@
