"""The WSGI application, for waitress (see serve.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rapidsms_project.settings")

application = get_wsgi_application()
