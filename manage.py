#!/usr/bin/env python
"""Django's command-line utility for CitizenHub."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "citizenhub.settings")
    from citizenhub.startup import run_or_explain

    def start() -> None:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)

    run_or_explain(start)


if __name__ == "__main__":
    main()
