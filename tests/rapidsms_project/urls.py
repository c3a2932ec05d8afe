"""URLs: the backend views the bridge forwards inbound SMS to, Kannel's and Vumi's.

The backend name in each view must match its key in INSTALLED_BACKENDS, so that
replies to these connections go out through the same backend.
"""

from django.urls import path

from rapidsms.backends.kannel.views import KannelBackendView
from rapidsms.backends.vumi.views import VumiBackendView

urlpatterns = [
    path(
        "backend/kannel-backend/",
        KannelBackendView.as_view(backend_name="kannel-backend"),
        name="kannel-backend",
    ),
    path(
        "backend/vumi-backend/",
        VumiBackendView.as_view(backend_name="vumi-backend"),
        name="vumi-backend",
    ),
]
