# CitizenHub developer commands. `make demo` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# GOV.UK Frontend, HTMX and Chart.js come from npm (pinned in package-lock.json); Django
# serves them from node_modules (STATICFILES_DIRS), so there is no bundler or build step.
NODE_INSTALLED := node_modules/.installed
# The demo always runs on its own SQLite file with in-process tasks, whatever the shell has set.
# Fake secrets for the demo channels, which name them as DEMO_... variables (channels/demo.py);
# they only ever reach fake providers on 127.0.0.1. X and Twilio get none on purpose: their
# libraries can only call the real services, so those demo channels are off and secretless.
DEMO_SECRETS := DEMO_IMAP_PASSWORD=demo-imap-password \
    DEMO_MAILGUN_SIGNING_KEY=demo-mailgun-signing-key \
    DEMO_NOTIFY_CALLBACK_TOKEN=demo-notify-callback-token \
    DEMO_NOTIFY_API_KEY=demo-3d1f6b0e-9c2a-4e57-8b14-6a0f2c9d7e31-5b7e2a91-0c4d-4f6e-a8b3-2d9c1e7f4a60 \
    DEMO_MASTODON_ACCESS_TOKEN=demo-mastodon-access-token \
    DEMO_FACEBOOK_APP_SECRET=demo-facebook-app-secret \
    DEMO_FACEBOOK_VERIFY_TOKEN=demo-facebook-verify-token \
    DEMO_FACEBOOK_PAGE_ACCESS_TOKEN=demo-facebook-page-access-token
# Staff MFA (TOTP) is relaxed so the printed demo login works at once; production requires it.
DEMO_ENV := env -u REDIS_URL DATABASE_URL=sqlite:///$(CURDIR)/db.sqlite3 DEBUG=1 \
    STAFF_MFA_REQUIRED=0 $(DEMO_SECRETS)
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
# The demo's SMTP receiver (channel `contact`, seeded by seed_demo); see README.
DEMO_SMTP_HOST ?= 127.0.0.1
DEMO_SMTP_PORT ?= 2525

.PHONY: install demo test lint format bench bench-data clean messages

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_INSTALLED)

install: $(INSTALLED) $(NODE_INSTALLED)

# The SMTP receiver and the in-process schedule (the demo's celery beat) run as long as
# runserver does; leaving runserver (Ctrl-C) stops them.
demo: install
	$(DEMO_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEMO_ENV) $(BIN)/python manage.py seed_demo
	$(DEMO_ENV) $(BIN)/python manage.py demo_staff
	stop_background() { kill $$smtp $$schedule 2>/dev/null; wait; }; \
	trap stop_background EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; \
	$(DEMO_ENV) $(BIN)/python manage.py smtp_inbound --host $(DEMO_SMTP_HOST) \
		--port $(DEMO_SMTP_PORT) --channel contact & smtp=$$!; \
	$(DEMO_ENV) $(BIN)/python manage.py run_schedule & schedule=$$!; \
	$(DEMO_ENV) $(BIN)/python manage.py runserver $(DEMO_HOST):$(DEMO_PORT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/run.py

# The scale database `make bench` measures the staff pages on (1,000,000 citizens,
# 10,000,000 timeline entries); skips if already built, FORCE=1 rebuilds. See benchmarks/README.md.
bench-data: install
	$(BIN)/python benchmarks/scale_data.py $(if $(FORCE),--force)

# The Welsh catalogue (locale/cy/LC_MESSAGES/django.po) holds what residents see; the staff
# pages stay in English, so their code and templates are left out, except the staff partials
# the portal includes (error summary, pagination, form field). After `make messages`,
# translate the new entries, then run it again to compile the .mo (committed, so a machine
# without gettext still shows Welsh). tests/portal/test_welsh_catalogue.py reads this list.
MESSAGES_IGNORE := .venv node_modules var test-artifacts staticfiles benchmarks tests \
    citizenhub.egg-info citizenhub/staff citizenhub/models/duplicates.py \
    citizenhub/templates/staff/home.html citizenhub/templates/staff/citizens \
    citizenhub/templates/staff/duplicates citizenhub/templates/staff/erasure \
    citizenhub/templates/staff/insight citizenhub/templates/staff/search \
    citizenhub/templates/staff/cases/detail.html citizenhub/templates/staff/cases/new.html \
    citizenhub/templates/staff/cases/queue.html citizenhub/templates/staff/cases/refused.html \
    citizenhub/templates/staff/cases/restricted.html \
    citizenhub/templates/staff/cases/_attachments_panel.html \
    citizenhub/templates/staff/cases/_deadline.html templates/staff/base.html \
    templates/staff/forbidden.html channels/staff channels/templates/channels/staff \
    channels/templates/channels/health.html engagement/staff_panels.py \
    engagement/staff_panels_deliveries.py engagement/staff_views.py engagement/staff_urls.py \
    engagement/forms.py engagement/api engagement/analytics.py engagement/campaigns.py \
    engagement/sms_segments.py engagement/mobilisation.py \
    engagement/templates/engagement/staff

messages:
	DEBUG=1 $(BIN)/python manage.py makemessages --locale=cy --no-obsolete \
		--add-location=file $(addprefix --ignore=,$(MESSAGES_IGNORE))
	DEBUG=1 $(BIN)/python manage.py compilemessages --locale=cy --ignore=.venv \
		--ignore=node_modules

clean:
	rm -rf $(VENV) node_modules db.sqlite3 staticfiles .pytest_cache .ruff_cache
