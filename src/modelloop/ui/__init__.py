"""The web UI: server-rendered pages over the same store the REST API serves.

Mounted by :func:`modelloop.server.app.create_app` under ``/ui`` (``modelloop server`` or
``modelloop ui``). Importing this package is cheap: Jinja2 and the store load only when
:func:`modelloop.ui.app.ui_router` builds the routes.
"""
