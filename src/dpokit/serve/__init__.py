"""`dpokit serve`: an OpenAI-compatible API and a web page to chat, compare and label preferences.

Design: one module per job.

==================  ==========================================================================
``app``             the FastAPI app: routes (``/v1/models``, ``/v1/chat/completions``,
                    ``/v1/completions``, ``/health``, the page's ``/api/*`` and ``/``, ``/compare``,
                    ``/label``), SSE framing (``data: {json}\\n\\n`` ... ``data: [DONE]\\n\\n``)
``guard``           the API-key and body-size middleware (plain ASGI), security headers, errors in
                    OpenAI's shape
``schemas``         the pydantic request models (OpenAI's fields and ranges), the response and
                    chunk builders, and :class:`~dpokit.serve.schemas.APIError` with OpenAI's
                    error body ``{"error": {"message", "type", "param", "code"}}``
``registry``        what is served: each ``NAME=REF`` opened with :func:`dpokit.runs.open_model_or_run`,
                    loaded with :func:`dpokit.runs.load_for_inference`; LoRA runs on the same base
                    share ONE copy of the base weights (PEFT multi-adapter, ``load_adapter``; the
                    base itself served with the adapters disabled); each name has its own
                    :class:`dpokit.render.Renderer` (its run's chat template setting and system prompt)
``scheduler``       batching: one worker thread per loaded base model with a queue; the requests
                    waiting for the same adapter and sampling settings go through one left-padded
                    ``generate`` call. Generation never runs on the event loop, so ``/health``
                    answers under load
``jobs``            a request as the scheduler sees it: its parameters, its events, its job
``rows``            streaming is step-wise: a stopping criterion called after each step decodes every
                    row's new token, applies ``stop`` strings and per-row ``max_tokens``, and pushes
                    text to that request's asyncio queue; presence/frequency penalties
``labels``          :class:`~dpokit.serve.labels.LabelStore`: the prompt queue (``--prompts`` file and
                    typed-in prompts) and the decisions, appended with write+flush+fsync as JSON
                    lines: left/right pairs to ``preferences.jsonl`` (dpokit's canonical preference
                    format, read by ``dpokit train`` and ``dpokit data inspect`` as it is), ties and
                    skips to ``decisions.jsonl`` (never a trainable pair); one decision per queue
                    item (its id is the idempotency key); a torn last line is repaired on open
``server``          ``serve(...)``: load, warn about unsafe binds, run uvicorn; clean shutdown
``static/``         the page: plain HTML, CSS and JavaScript, no build step, no CDN; model output is
                    always put in the page as text (``textContent``), never as HTML
==================  ==========================================================================

The prompt of a chat request is rendered by :class:`dpokit.render.Renderer`, the renderer
training uses, so the ids the model reads are the ids it was trained on.
"""
