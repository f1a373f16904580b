"""ASGI entry point."""

import os

from django.core.asgi import get_asgi_application

from citizenhub.startup import run_or_explain

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "citizenhub.settings")
application = run_or_explain(get_asgi_application)
