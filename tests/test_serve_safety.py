"""`dpokit serve`'s safety: API key (401 in OpenAI's shape), no CORS unless asked, loopback by default,
security headers, option checks, the `serve` command's parser."""

from __future__ import annotations

import httpx
import pytest

from serve_support import LiveServer, build_state

pytestmark = pytest.mark.usefixtures("one_torch_thread")

KEY = "test-key-1234"
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def keyed(tiny_model_dir, one_torch_thread):
    state = build_state([tiny_model_dir], named=[], labels_dir=None, api_key=KEY,
                        cors_origins=["http://localhost:3000"])
    with LiveServer(state) as server:
        yield server


@pytest.fixture(scope="module")
def open_server(tiny_model_dir, one_torch_thread):
    state = build_state(named=[f"tiny={tiny_model_dir}"], labels_dir=None)
    with LiveServer(state) as server:
        yield server


def test_api_key_required_on_the_api(keyed):
    body = {"model": keyed.state.registry.names[0], "messages": HELLO, "max_tokens": 2}
    with httpx.Client(base_url=keyed.url, timeout=30) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"},
                        {"Authorization": KEY}):
            for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/api/info")):
                response = client.request(method, path, headers=headers, json=body if method == "POST" else None)
                assert response.status_code == 401, (headers, path)
                error = response.json()["error"]
                assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
                assert response.headers["www-authenticate"] == "Bearer"
        # malformed JSON without the key is still a 401, not a parse error
        assert client.post("/v1/chat/completions", content=b"{").status_code == 401
        good = {"Authorization": f"Bearer {KEY}"}
        assert client.get("/v1/models", headers=good).status_code == 200
        assert client.post("/v1/chat/completions", headers=good, json=body).status_code == 200
        # open without the key: health and the page's files (the page asks for the key itself)
        assert client.get("/health").status_code == 200
        assert client.get("/").status_code == 200 and client.get("/static/common.js").status_code == 200


def test_openai_client_with_and_without_the_key(keyed):
    import openai
    name = keyed.state.registry.names[0]
    ok = openai.OpenAI(base_url=keyed.url + "/v1", api_key=KEY, max_retries=0)
    assert ok.chat.completions.create(model=name, messages=HELLO, max_tokens=2).choices
    bad = openai.OpenAI(base_url=keyed.url + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_the_key_is_compared_in_constant_time():
    import inspect

    from dpokit.serve import guard

    assert "hmac.compare_digest" in inspect.getsource(guard.GuardMiddleware)


def test_no_cors_unless_asked(open_server, keyed):
    preflight = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    with httpx.Client(timeout=30) as client:
        r = client.options(open_server.url + "/v1/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
        r = client.get(open_server.url + "/v1/models", headers={"Origin": "http://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        # --cors-origin http://localhost:3000: that origin only
        allowed = {**preflight, "Origin": "http://localhost:3000"}
        r = client.options(keyed.url + "/v1/chat/completions", headers=allowed)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
        r = client.options(keyed.url + "/v1/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in r.headers


def test_security_headers_on_the_page(open_server):
    response = httpx.get(open_server.url + "/label", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    for page in ("/", "/compare", "/label"):
        html = httpx.get(open_server.url + page, timeout=30).text
        assert "http://" not in html and "https://" not in html  # nothing from a CDN: works offline
        assert "innerHTML" not in html


def test_page_scripts_never_insert_html():
    from dpokit.serve.app import static_dir

    for path in static_dir().iterdir():
        if path.name.endswith(".js"):
            source = path.read_text()
            for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
                assert sink not in source, f"{path.name} uses {sink}"
            assert "http://" not in source and "https://" not in source


def test_binding_defaults_and_warning(capsys):
    from dpokit.serve.server import DEFAULT_HOST, ServeOptions, is_loopback

    assert DEFAULT_HOST == "127.0.0.1" and ServeOptions().host == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")


def test_serve_warns_when_bound_elsewhere_without_a_key(monkeypatch, capsys):
    from dpokit.errors import DpokitError
    from dpokit.serve import server

    def stop(*args, **kwargs):
        raise DpokitError("stopped before loading")

    monkeypatch.setattr(server, "build_state", stop)
    with pytest.raises(DpokitError):
        server.serve(server.ServeOptions(host="0.0.0.0"))
    assert "WARNING: listening on 0.0.0.0 with no API key" in capsys.readouterr().err
    with pytest.raises(DpokitError):
        server.serve(server.ServeOptions(host="0.0.0.0", api_key="k"))
    assert "WARNING" not in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--model", "noequals"], "expected NAME=MODEL_OR_RUN"),
    (["--model", "bad name=x"], "invalid name"),
    (["--port", "70000"], "not a port number"),
    (["--max-batch-size", "0"], "--max-batch-size"),
    (["--cors-origin", "evil.example"], "expected an origin"),
    (["/no/such/run"], "path does not exist"),
])
def test_serve_command_errors(args, message, capsys, tmp_path, monkeypatch):
    from dpokit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_two_runs_with_one_name_are_refused(tiny_lora_run, tmp_path):
    from dpokit.errors import DpokitError
    from dpokit.serve.registry import load_registry, parse_specs

    with pytest.raises(DpokitError, match="served as 'same'"):
        load_registry(parse_specs([], [f"same={tiny_lora_run}", f"same={tiny_lora_run}"]), say=lambda _: None)


def test_default_names(tiny_lora_run, tiny_model_dir):
    from dpokit.runs import open_model_or_run
    from dpokit.serve.registry import default_name

    assert default_name(str(tiny_lora_run), open_model_or_run(str(tiny_lora_run))) == tiny_lora_run.name
    final = str(tiny_lora_run / "final")
    assert default_name(final, open_model_or_run(final)) == tiny_lora_run.name
    assert default_name(tiny_model_dir, open_model_or_run(tiny_model_dir)) == tiny_model_dir.rstrip("/").split("/")[-1]
    assert default_name("smollm2-135m-instruct", open_model_or_run("smollm2-135m-instruct")) == "smollm2-135m-instruct"


def test_serve_is_a_command():
    from dpokit.cli import COMMANDS

    assert ("serve", "serve") == COMMANDS[[c[0] for c in COMMANDS].index("serve")][:2]


@pytest.mark.slow
def test_no_model_serves_the_embedded_default():
    """`dpokit serve` on a fresh machine: the embedded SmolLM2, answering sensibly."""
    state = build_state(labels_dir=None, max_tokens=12)
    assert state.registry.names == ["smollm2-135m-instruct"]
    with LiveServer(state) as server:
        body = httpx.post(server.url + "/v1/chat/completions", timeout=120, json={
            "model": "smollm2-135m-instruct", "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}).json()
    assert "Paris" in body["choices"][0]["message"]["content"]
