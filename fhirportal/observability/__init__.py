"""Operations: request ids (``request_id``), log lines as text or JSON (``logs``), Prometheus metrics
(``metrics``)."""
