"""The scheduler: Celery beat and the periodic tasks it sends to the `default` queue.

- the reaper re-sends jobs whose message was lost or whose worker died (`scheduler.reaper`);
- inboxes turn new images in watched folders into NST batches (`scheduler.inboxes`);
- retention removes old files from storage and marks them in the database (`scheduler.retention`).

`atelier beat` runs the schedule; a lock keeps it to one instance (`scheduler.locks`).
"""
