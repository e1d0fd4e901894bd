"""``plm serve``: checkpoints behind a batched HTTP service, with a web page to look inside them.

* :mod:`~plmkit.serve.models` — what a folder can serve, read from its own files, and the batch
  function of each endpoint (built on the pipelines);
* :mod:`~plmkit.serve.batching` — dynamic batching: concurrent requests share one forward pass,
  computed off the event loop, behind a bounded queue;
* :mod:`~plmkit.serve.app` — :func:`create_app`, the FastAPI app (JSON endpoints, OpenAPI,
  ``/health``, ``/metrics``, limits, auth, the page in ``static/``).
"""

from plmkit.serve.app import ServeSettings, create_app
from plmkit.serve.models import ServedModel, load_served

__all__ = ["ServeSettings", "ServedModel", "create_app", "load_served"]
