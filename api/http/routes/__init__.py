"""One router per resource; `api.http.app` mounts them all."""
