#!/usr/bin/env python
"""Django's command-line utility."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        # Ctrl-C is the user's choice, not a crash: no traceback. What a command stored before it stays
        # (imports and retag commit as they go, and a rerun takes up the rest).
        sys.stderr.write("\ninterrupted\n")
        sys.exit(130)
