# CitizenHub developer commands. `make demo` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The demo always runs on its own SQLite file with in-process tasks, whatever the shell has set.
DEMO_ENV := env -u REDIS_URL DATABASE_URL=sqlite:///$(CURDIR)/db.sqlite3 DEBUG=1
DEMO_HOST ?= 127.0.0.1
DEMO_PORT ?= 8000
# The demo's SMTP receiver (channel `contact`, seeded by seed_demo); see README.
DEMO_SMTP_HOST ?= 127.0.0.1
DEMO_SMTP_PORT ?= 2525

.PHONY: install demo test lint format bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

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

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache
