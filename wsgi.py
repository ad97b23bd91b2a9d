"""The one place that builds the application: gunicorn serves ``wsgi:app``; Celery runs ``wsgi:celery``."""

from core.app import create_app

app = create_app()
celery = app.extensions["celery"]
