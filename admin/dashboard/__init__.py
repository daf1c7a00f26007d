"""The web dashboard: a static page (``static/``) served by the admin API at ``/dashboard/``.

The page holds no secret and no data; it asks for the admin token once and reads and
writes everything through the JSON API with it. :mod:`admin.dashboard.routes` registers the
files and exempts them, and only them, from the token check.
"""

from admin.dashboard.routes import PATHS, add_routes, exempt

__all__ = ["PATHS", "add_routes", "exempt"]
