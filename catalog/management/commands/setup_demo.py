"""Prepare a local demo: an admin user and the demo catalog, tagged and indexed. Safe to rerun."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser

from fashion_search.commands import DatabaseCommand
from recognition.versions import versions_register_builtin

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo_data"
DEMO_SOURCE = "demo"


class Command(DatabaseCommand):
    help = "Create the admin user (admin / DEMO_ADMIN_PASSWORD, default 'admin') and import the demo catalog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: object, **options: object) -> None:
        username: str = options["username"].strip()
        if not username:
            raise CommandError("--username must name the admin user (it may not be empty).")
        password = os.environ.get("DEMO_ADMIN_PASSWORD", "")
        if not password:
            if settings.PRODUCTION:
                raise CommandError("Set DEMO_ADMIN_PASSWORD: a production site gets no default admin password.")
            password = "admin"
        user_model = get_user_model()
        try:
            user_model._meta.get_field(user_model.USERNAME_FIELD).run_validators(username)
        except ValidationError as exc:
            raise CommandError(f"--username {username[:40]!r} cannot name a user: {' '.join(exc.messages)}") from None
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user_model.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(f"created admin user {username!r}")
            login = f"as {username!r} (password: {password!r} unless you changed it there)"
        elif user.is_staff and user.is_active:
            login = f"as {username!r} (its password was left as it is)"
        else:
            self.stderr.write(f"user {username!r} exists and cannot log in to the admin; it was left as it is")
            login = "as an active staff user"
        registered = versions_register_builtin()
        if registered:
            self.stdout.write(f"registered {registered} shipped recognizers")
        call_command(
            # Named, so that the demo stays one source wherever the checkout is moved.
            "import_catalog", str(DEMO_DIR), csv=DEMO_DIR / "items.csv", source=DEMO_SOURCE,
            verbosity=options["verbosity"], stdout=self.stdout, stderr=self.stderr,
        )
        # No address: the port is the server's to choose (`make run PORT=...` prints it).
        self.stdout.write(f"\nDemo ready. Log in to the admin (/admin/ on the server) {login}.")
