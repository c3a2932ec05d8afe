"""URLs: only the Kannel backend view the bridge forwards inbound SMS to.

The backend name in the view must match the key in INSTALLED_BACKENDS, so that
replies to these connections go out through the same KannelBackend.
"""

from django.urls import path

from rapidsms.backends.kannel.views import KannelBackendView

urlpatterns = [
    path(
        "backend/kannel-backend/",
        KannelBackendView.as_view(backend_name="kannel-backend"),
        name="kannel-backend",
    ),
]
