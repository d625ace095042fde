"""StreamOne signing: the three public vectors of upstreams.md, and argument encoding."""

from __future__ import annotations

import pytest

from gateway.core.streamone_signing import (
    Actor,
    UnusableArguments,
    call_parameters,
    caller_parameters,
    encode_form,
    encode_query,
    form_arguments,
    form_pairs,
    json_arguments,
    php_urlencode,
    session_key,
    signature,
    signed_query,
    string_to_sign,
)

USER = Actor("user", "user")
APP = Actor("application", "application")


def test_public_vector_user_without_arguments() -> None:
    query = encode_query(call_parameters(USER, 1234, []))
    assert query == "api=3&authentication_type=user&format=json&timestamp=1234&user=user"
    to_sign = string_to_sign("/api/item/view", query, b"")
    assert to_sign == (
        b"/api/item/view?api=3&authentication_type=user&format=json&timestamp=1234&user=user&"
    )
    assert signature("psk", to_sign) == "a3a030d15fd3faef49fd1340cb474113645628dc"


def test_public_vector_user_with_an_argument() -> None:
    query = encode_query(call_parameters(USER, 1234, []))
    body = encode_form([("x", "ABxu233")])
    assert signature("psk", string_to_sign("/api/item/view", query, body)) == (
        "02b3c66918d4d1cce6f1558ee2470c341dfe40db"
    )


def test_public_vector_application() -> None:
    query = encode_query(call_parameters(APP, 1234, []))
    assert query == (
        "api=3&application=application&authentication_type=application&format=json&timestamp=1234"
    )
    assert signature("apppsk", string_to_sign("/api/item/view", query, b"")) == (
        "588b4aaa105678d5de14b9f87e431c9cc7fe458c"
    )


def test_signed_query_appends_the_signature_last() -> None:
    query = encode_query(call_parameters(USER, 1234, []))
    assert signed_query("/api/item/view", query, b"", "psk") == (
        query + "&signature=a3a030d15fd3faef49fd1340cb474113645628dc"
    )


def test_caller_parameters_and_session_are_sorted_in() -> None:
    caller = caller_parameters("timezone=Europe%2FAmsterdam&account=a1,a2")
    query = encode_query(call_parameters(APP, 5, caller, session="s1"))
    assert query == (
        "account=a1%2Ca2&api=3&application=application&authentication_type=application"
        "&format=json&session=s1&timestamp=5&timezone=Europe%2FAmsterdam"
    )


@pytest.mark.parametrize(
    "query",
    ["api=2", "signature=x", "user=other", "x=1", "account=1&customer=2", "account=1&account=2"],
)
def test_unusable_caller_parameters_are_refused(query: str) -> None:
    with pytest.raises(UnusableArguments):
        caller_parameters(query)


def test_json_arguments_join_lists_and_map_booleans() -> None:
    pairs = json_arguments(b'{"title": "a b", "tags": ["x", "y"], "public": true, "n": 3,'
                           b' "off": false, "f": 1.5, "ids": [1, 2]}')  # fmt: skip
    assert pairs == [
        ("title", "a b"), ("tags", "x,y"), ("public", "1"), ("n", "3"), ("off", "0"),
        ("f", "1.5"), ("ids", "1,2"),
    ]  # fmt: skip
    assert encode_form(pairs[:2]) == b"title=a+b&tags=x%2Cy"


@pytest.mark.parametrize(
    "body",
    [b"[1]", b'"x"', b"{bad", b'{"a": {"b": 1}}', b'{"a": [[1]]}',
     b'{"a": ["x,y"]}'],
)  # fmt: skip
def test_unusable_json_is_refused(body: bytes) -> None:
    with pytest.raises(UnusableArguments):
        json_arguments(body)


def test_form_arguments_keeps_strings_verbatim() -> None:
    assert form_arguments({"q": "a&b=c"}) == [("q", "a&b=c")]
    assert encode_form(form_arguments({"q": "a&b=c"})) == b"q=a%26b%3Dc"


def test_session_key() -> None:
    assert session_key("apppsk", "k") == "apppskk"


# What PHP 8's http_build_query(["k" => $value]) writes for each value.
PHP_ENCODED = [
    ("a b", "a+b"),
    ("~tilde~", "%7Etilde%7E"),
    ("-_.", "-_."),
    ("AZaz09", "AZaz09"),
    ("a+b&c=d/e?f#g", "a%2Bb%26c%3Dd%2Fe%3Ff%23g"),
    ("é", "%C3%A9"),
    ("日本", "%E6%97%A5%E6%9C%AC"),
    ("😀", "%F0%9F%98%80"),
    ("*'()!", "%2A%27%28%29%21"),
    ("", ""),
    ("\n\t", "%0A%09"),
]


@pytest.mark.parametrize(("value", "encoded"), PHP_ENCODED)
def test_php_urlencode(value: str, encoded: str) -> None:
    assert php_urlencode(value) == encoded
    assert encode_form([("k", value)]) == f"k={encoded}".encode()


def test_null_is_an_empty_argument_as_the_php_sdk_sets_it() -> None:
    assert json_arguments(b'{"a": null, "b": ""}') == [("a", ""), ("b", "")]
    assert encode_form(json_arguments(b'{"a": null, "b": ""}')) == b"a=&b="


def test_a_callers_form_body_is_written_again_as_php_would() -> None:
    pairs = form_pairs(b"title=a%20b+c&tag=%7E&tag=~x&empty=&flag&u=%C3%A9")
    assert pairs == [("title", "a b c"), ("tag", "~"), ("tag", "~x"), ("empty", ""),
                     ("flag", ""), ("u", "é")]  # fmt: skip
    assert encode_form(pairs) == b"title=a+b+c&tag=%7E&tag=%7Ex&empty=&flag=&u=%C3%A9"
    with pytest.raises(UnusableArguments):
        form_pairs(b"u=%FF")  # not UTF-8 once decoded
    with pytest.raises(UnusableArguments):
        form_pairs("u=é".encode())  # a raw non-ASCII byte is not percent-encoded


@pytest.mark.parametrize(
    ("arguments", "body"),
    [
        ([("title", "two words")], b"title=two+words"),
        ([("q", "~home")], b"q=%7Ehome"),
        ([("title", "Café ☕")], b"title=Caf%C3%A9+%E2%98%95"),
        ([("empty", ""), ("x", "1")], b"empty=&x=1"),
        ([], b""),
    ],
)
def test_signed_strings_cover_the_exact_bytes_sent(
    arguments: list[tuple[str, str]], body: bytes
) -> None:
    query = encode_query(
        call_parameters(USER, 1234, caller_parameters("timezone=Europe%2FAmsterdam"))
    )
    assert encode_form(arguments) == body
    to_sign = string_to_sign("/api/item/view", query, body)
    assert to_sign == b"/api/item/view?" + query.encode() + b"&" + body
    import hashlib
    import hmac

    expected = hmac.new(b"psk", to_sign, hashlib.sha1).hexdigest()
    assert signed_query("/api/item/view", query, body, "psk").endswith(f"&signature={expected}")
