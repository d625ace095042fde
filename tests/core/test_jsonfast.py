"""gateway.core.jsonfast: orjson, and the standard library for what orjson refuses."""

from __future__ import annotations

import json

from gateway.core.jsonfast import dumps, dumps_str
from gateway.core.problem import Problem


def test_renders_the_same_json_as_the_standard_library() -> None:
    value = {"a": 'é\n"x"', "n": [1, 2.5, None, True], "d": {"k": "v"}, 3: "int key"}
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))
    assert dumps_str(value) == dumps(value).decode()


def test_what_orjson_refuses_still_renders() -> None:
    # A lone surrogate (a path decoded with surrogateescape) and an integer over
    # 64 bits: orjson raises on both; a log line or a problem body must not.
    assert json.loads(dumps({"path": "/x\udc80"})) == {"path": "/x\udc80"}
    assert json.loads(dumps({"n": 2**70})) == {"n": 2**70}


def test_default_renders_unknown_types() -> None:
    assert json.loads(dumps({"o": object()}, default=lambda o: "obj")) == {"o": "obj"}


def test_a_problem_body_is_its_dict_as_json() -> None:
    problem = Problem(code="invalid_request", detail='path refused: é "x"')
    body = problem.to_json(instance="/x", request_id="r")
    assert json.loads(body) == problem.to_dict(instance="/x", request_id="r")
