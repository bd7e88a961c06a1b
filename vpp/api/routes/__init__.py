"""One router per resource, mounted under ``/api/v1`` by :func:`vpp.api.app.create_app`."""
