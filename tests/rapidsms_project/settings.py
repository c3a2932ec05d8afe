"""Django settings for the end-to-end RapidSMS project.

Read from the environment (set by tests/rapidsms_env.py):

- RAPIDSMS_E2E_DB: path of the SQLite database file (required; a temp dir).
- RAPIDSMS_E2E_SENDSMS_URL: the bridge's Kannel-style sendsms URL.
- RAPIDSMS_E2E_SENDSMS_USERNAME / RAPIDSMS_E2E_SENDSMS_PASSWORD: its credentials.
- RAPIDSMS_E2E_VUMI_URL: the bridge's /vumi/send URL, for the second backend, "vumi-backend"
  (RapidSMS's stock VumiBackend, same credentials as HTTP basic auth; default: the sendsms URL's
  host with /vumi/send).

The backend is RapidSMS's stock KannelBackend with charset UTF-8 and coding 2, as
the README recommends: RapidSMS's defaults (charset ascii, errors "ignore") would
silently strip every non-ASCII character from replies before they reach the bridge.
The VumiBackend needs no charset settings at all: it posts JSON.
"""

import os
import urllib.parse

DEBUG = False
SECRET_KEY = "gsmbridge-e2e-test-only"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rapidsms",
    "rapidsms.backends.kannel",
    "rapidsms_project.echo",
]

MIDDLEWARE = []
ROOT_URLCONF = "rapidsms_project.urls"
WSGI_APPLICATION = "rapidsms_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["RAPIDSMS_E2E_DB"],
    }
}

RAPIDSMS_ROUTER = "rapidsms.router.blocking.BlockingRouter"

INSTALLED_BACKENDS = {
    "kannel-backend": {
        "ENGINE": "rapidsms.backends.kannel.KannelBackend",
        "sendsms_url": os.environ.get(
            "RAPIDSMS_E2E_SENDSMS_URL", "http://127.0.0.1:13013/cgi-bin/sendsms"
        ),
        "sendsms_params": {
            "smsc": "",
            "from": "",
            "username": os.environ.get("RAPIDSMS_E2E_SENDSMS_USERNAME", "rapidsms"),
            "password": os.environ.get("RAPIDSMS_E2E_SENDSMS_PASSWORD", ""),
        },
        "charset": "UTF-8",
        "coding": 2,
        "encode_errors": "strict",
    },
    "vumi-backend": {
        "ENGINE": "rapidsms.backends.vumi.VumiBackend",
        "sendsms_url": os.environ.get("RAPIDSMS_E2E_VUMI_URL") or urllib.parse.urljoin(
            os.environ.get("RAPIDSMS_E2E_SENDSMS_URL", "http://127.0.0.1:13013/"), "/vumi/send"
        ),
        "sendsms_user": os.environ.get("RAPIDSMS_E2E_SENDSMS_USERNAME", "rapidsms"),
        "sendsms_pass": os.environ.get("RAPIDSMS_E2E_SENDSMS_PASSWORD", ""),
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "rapidsms": {"handlers": ["console"], "level": "INFO"},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}
