"""The client side of a deployment (``greenfl join``).

``FederatedClient`` (``link.py``) joins a ``greenfl serve`` server and keeps the link:
reconnecting with backoff, taking tasks off its stream, submitting updates. Each task is
trained by ``task.py`` on what ``local.py`` built from the server's config (the data, the
model, the codec; a test client's attack), and secure aggregation's client steps are
``secagg.py``'s. ``ClientOptions`` and ``ClientStats``: ``options.py``."""

from greenfl.deploy.client.link import FederatedClient
from greenfl.deploy.client.local import ClientAttack
from greenfl.deploy.client.options import ClientOptions, ClientStats

__all__ = ["ClientAttack", "ClientOptions", "ClientStats", "FederatedClient"]
