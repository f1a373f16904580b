"""WSGI entry point (gunicorn citizenhub.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from citizenhub.startup import run_or_explain

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "citizenhub.settings")
application = run_or_explain(get_wsgi_application)
