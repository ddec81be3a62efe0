"""``steerlab serve``: a run's methods behind OpenAI's protocol, with per-request steering.

``protocol`` declares the requests and responses, ``service`` checks a request and makes it a
batch row, ``batcher`` decodes rows together (one control each) on a worker thread, ``rows``
streams and ends each row, ``app`` is the FastAPI application, the playground page and the
command (docs/serving.md).
"""
