"""The Celery app's delivery guarantees are configured where Celery and kombu read them."""

from __future__ import annotations

from atelier.celery_app import NST_STYLIZE, VIDEO_FILTER, create_app
from atelier.settings import Settings


def test_reliability_settings_for_redis():
    app = create_app(Settings(broker_url="redis://127.0.0.1:6379/15", visibility_timeout=4321))
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.result_accept_content == ["json"]
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] == 4321
    assert conf.result_backend_transport_options["visibility_timeout"] == 4321
    assert conf.visibility_timeout == 4321
    assert conf.worker_send_task_events and conf.task_send_sent_event
    assert conf.worker_enable_remote_control


def test_tasks_are_routed_to_their_queues():
    app = create_app(Settings(broker_url="redis://127.0.0.1:6379/15"))
    router = app.amqp.router
    assert router.route({}, NST_STYLIZE)["queue"].name == "nst"
    assert router.route({}, VIDEO_FILTER)["queue"].name == "video"
    assert router.route({}, "atelier.ping")["queue"].name == "default"
